#!/bin/sh
# Tell chatopsbot about a deploy, or ask whether an environment is locked, from any CI runner
# with curl and openssl. Requests are signed with the v1 scheme (docs/writing-plugins.md,
# "HTTP hooks"): a captured request cannot be replayed later or pointed at another service.
#
#   deploy-event.sh event <started|succeeded|failed|rolled_back>   # POST /hooks/deploy
#   deploy-event.sh check                                          # exit 3 while locked
#
# Environment: CHATOPSBOT_URL (https://bot.example.com), DEPLOY_WEBHOOK_TOKEN (the bot's
# [plugins.deploy] webhook_token), SERVICE, ENVIRONMENT, VERSION; optional DEPLOY_URL (the
# pipeline's page), DEPLOY_ACTOR, DELIVERY_ID (one per delivery: by default the run, the
# attempt and the status when GitHub Actions variables are set, else random).
# Names are letters, digits, '.', '_', '/', '-'; DEPLOY_URL and DEPLOY_ACTOR must not hold
# '"' or '\' (this script does not escape JSON). The HMAC key is passed to openssl on its
# command line: run it on a runner no other user shares.
set -eu

: "${CHATOPSBOT_URL:?}" "${DEPLOY_WEBHOOK_TOKEN:?}" "${SERVICE:?}" "${ENVIRONMENT:?}"

# sign METHOD PATH QUERY BODY DELIVERY: the X-Chatopsbot-Signature value.
sign() {
    printf 'v1:%s:%s:%s:%s:%s:%s' "$ts" "$5" "$1" "$2" "$3" "$4" |
        openssl dgst -sha256 -hmac "$DEPLOY_WEBHOOK_TOKEN" -r | cut -d' ' -f1 | sed 's/^/v1=/'
}

ts=$(date +%s)
base=${CHATOPSBOT_URL%/}

case "${1:-}" in
event)
    status=${2:?usage: deploy-event.sh event <status>}
    : "${VERSION:?}"
    for value in "${DEPLOY_URL:-}" "${DEPLOY_ACTOR:-}"; do
        case $value in *'"'* | *'\'*) echo "DEPLOY_URL/DEPLOY_ACTOR: no '\"' or '\\'" >&2; exit 2 ;; esac
    done
    if [ -n "${GITHUB_RUN_ID:-}" ]; then
        default_id="gha-$GITHUB_RUN_ID-${GITHUB_RUN_ATTEMPT:-1}-$SERVICE-$ENVIRONMENT-$status"
    else
        default_id="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    fi
    # Only A-Z a-z 0-9 . _ - in a delivery id: a service like team/api becomes team_api.
    delivery=$(printf '%s' "${DELIVERY_ID:-$default_id}" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-128)
    body=$(printf '{"service":"%s","environment":"%s","version":"%s","status":"%s"' \
        "$SERVICE" "$ENVIRONMENT" "$VERSION" "$status")
    [ -z "${DEPLOY_URL:-}" ] || body="$body,\"url\":\"$DEPLOY_URL\""
    [ -z "${DEPLOY_ACTOR:-}" ] || body="$body,\"actor\":\"$DEPLOY_ACTOR\""
    body="$body}"
    # curl's retries resend these very headers: the same delivery, handled once.
    curl -fsS --retry 3 -X POST "$base/hooks/deploy" \
        -H 'Content-Type: application/json' \
        -H "X-Chatopsbot-Timestamp: $ts" \
        -H "X-Chatopsbot-Signature: $(sign POST /hooks/deploy '' "$body" "$delivery")" \
        -H "X-Delivery-Id: $delivery" \
        --data-binary "$body"
    echo
    ;;
check)
    # Signed as sent: parameters sorted by name, percent-encoded (of the characters names may
    # hold, only '/' needs it).
    query=$(printf 'environment=%s&service=%s' "$ENVIRONMENT" "$SERVICE" | sed 's|/|%2F|g')
    code=$(curl -sS -o /dev/stderr -w '%{http_code}' "$base/hooks/deploy/lock?$query" \
        -H "X-Chatopsbot-Timestamp: $ts" \
        -H "X-Chatopsbot-Signature: $(sign GET /hooks/deploy/lock "$query" '' '')")
    case $code in
    200) exit 0 ;;
    423) echo "$SERVICE $ENVIRONMENT is locked" >&2; exit 3 ;;
    *) echo "lock check answered $code" >&2; exit 1 ;;
    esac
    ;;
*)
    echo "usage: deploy-event.sh event <status> | deploy-event.sh check" >&2
    exit 2
    ;;
esac
