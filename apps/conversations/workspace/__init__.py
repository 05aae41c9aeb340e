"""The agent workspace: the three-pane live inbox page at ``/workspace/`` (views, its page-level
selectors, the short-lived WebSocket token for same-origin pages)."""
