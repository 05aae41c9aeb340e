"""GeWe simulator: the ``/v2/api`` (open-source) and ``/gewe/v2/api`` (hosted) protocol, with
login state machine, contacts, sending, labels, Moments (hosted flag) and webhook events.

Payload builders (``build_*``) return callback bodies in the platform's exact shape so other
code can construct them without a running simulator.
"""

from apps.integrations.simulators.gewe.payloads import (
    MENTION_END,
    _at_source,
    appmsg_xml,
    build_add_msg,
    build_del_contacts,
    build_mod_contacts,
    build_offline,
    build_ping,
    friend_request_xml,
    image_xml,
    voice_xml,
)
from apps.integrations.simulators.gewe.server import GeWeSimulator

__all__ = [
    "_at_source",
    "GeWeSimulator",
    "MENTION_END",
    "appmsg_xml",
    "build_add_msg",
    "build_del_contacts",
    "build_mod_contacts",
    "build_offline",
    "build_ping",
    "friend_request_xml",
    "image_xml",
    "voice_xml",
]
