#!/bin/sh
# Render the Alertmanager config with webhook URLs from the environment.
#
#   AKIDB_PAGER_WEBHOOK_URL=https://pager.example/hook \
#   AKIDB_TICKET_WEBHOOK_URL=https://tickets.example/hook \
#     observability/alertmanager/render.sh OUTPUT [TEMPLATE]
#
# TEMPLATE defaults to alertmanager.yml next to this script. Each variable replaces the
# quoted URL on the template line that ends with `# <VARIABLE>`; an unset or empty
# variable keeps the template's default. URLs must start with http:// or https:// and
# contain no quote, backslash or whitespace. POSIX sh + sed only (runs in busybox).
set -eu

usage() { echo "usage: $0 OUTPUT [TEMPLATE]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
out=$1
template=${2:-$(dirname "$0")/alertmanager.yml}
[ -r "$template" ] || { echo "render.sh: cannot read template $template" >&2; exit 1; }

check_url() { # NAME VALUE
    case $2 in
        http://?*|https://?*) ;;
        *) echo "render.sh: $1 must start with http:// or https:// (got '$2')" >&2; exit 1 ;;
    esac
    case $2 in
        *"'"*|*'"'*|*'\'*|*' '*|*'	'*)
            echo "render.sh: $1 must not contain quotes, backslashes or whitespace" >&2; exit 1 ;;
    esac
}

script=""
for var in AKIDB_PAGER_WEBHOOK_URL AKIDB_TICKET_WEBHOOK_URL; do
    eval "value=\${$var:-}"
    [ -n "$value" ] || continue
    check_url "$var" "$value"
    grep -q "# $var\$" "$template" || { echo "render.sh: no line marked # $var in $template" >&2; exit 1; }
    escaped=$(printf '%s' "$value" | sed 's/[&|]/\\&/g')
    script="$script
/# $var\$/ s|'[^']*'|'$escaped'|"
done

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
if [ -n "$script" ]; then
    sed -e "$script" "$template" > "$tmp"
else
    cat "$template" > "$tmp"
fi
mv "$tmp" "$out"
trap - EXIT
echo "render.sh: wrote $out"
