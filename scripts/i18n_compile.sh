#!/usr/bin/env bash
# Compile the zh_Hans catalogues, folding in the per-topic fragments under locale/pending/.
#
# Several engineers add strings at the same time; each writes its translations to
# locale/pending/<topic>.django.po (or <topic>.djangojs.po) instead of editing the main
# catalogue, so nobody's entries are clobbered. Fragments win over the main catalogue.
#   scripts/i18n_compile.sh          compile the .mo files (main catalogue + fragments)
#   scripts/i18n_compile.sh --fold   also rewrite the main .po files with the fragments folded in
set -euo pipefail
cd "$(dirname "$0")/.."
dir=locale/zh_Hans/LC_MESSAGES
fold="${1:-}"
for domain in django djangojs; do
  shopt -s nullglob
  fragments=(locale/pending/*."$domain".po)
  shopt -u nullglob
  main="$dir/$domain.po"
  [ -f "$main" ] || [ ${#fragments[@]} -gt 0 ] || continue
  tmp="$(mktemp)"
  if [ -f "$main" ]; then
    msgcat --use-first --no-location -o "$tmp" "${fragments[@]}" "$main"
  else
    msgcat --use-first -o "$tmp" "${fragments[@]}"
  fi
  if [ -f "$main" ]; then
    # Keep the main catalogue's header (plural forms, charset): msgcat takes the first file's.
    python3 - "$main" "$tmp" <<'PY'
import re, sys
main, merged = (open(p, encoding="utf-8").read() for p in sys.argv[1:3])
header = re.compile(r'\A(?:#[^\n]*\n)*msgid ""\nmsgstr ""\n(?:"[^\n]*"\n)*')
open(sys.argv[2], "w", encoding="utf-8").write(header.sub(lambda _: header.match(main).group(0), merged, count=1))
PY
  fi
  msgfmt --check-format -o "$dir/$domain.mo" "$tmp"
  if [ "$fold" = "--fold" ]; then cp "$tmp" "$main"; fi
  rm -f "$tmp"
done
