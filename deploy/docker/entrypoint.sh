#!/bin/sh
# Pick the service: the first argument if it names one, else $SERVICE; remaining arguments go to it.
#   api | dispatcher | session_store | webhooks | agent -> python -m services.<name> [args]
#   migrate -> apply the API's, the session store's and the webhook sender's migrations, exit
set -eu

case "${1:-}" in
  api | dispatcher | session_store | webhooks | agent | migrate) service="$1"; shift ;;
  *) service="${SERVICE:-}" ;;
esac

# The health check runs in its own process: tell it which service this container is.
printf '%s\n' "$service" > /tmp/agentready-service

case "$service" in
  api | dispatcher | session_store | webhooks | agent)
    exec python -m "services.$service" "$@" ;;
  migrate)
    python -m services.api migrate
    python -m services.session_store migrate
    exec python -m services.webhooks migrate ;;
  *)
    echo "usage: <api|dispatcher|session_store|webhooks|agent|migrate> [args] (or set SERVICE); got '${service}'" >&2
    exit 64 ;;
esac
