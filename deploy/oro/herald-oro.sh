#!/bin/sh
# Starts herald in place of `php bin/console gos:websocket:server`, with the environment Oro's
# own PHP would see: the process environment, then the application's .env-app and
# .env-app.local files (Symfony loads them the same way; values already set in the
# environment win). Run it from the Oro application directory, as supervisor's `directory=`
# does, or set ORO_APP_DIR. Extra arguments go to herald (for example `-vv` or `-p 8080`).
set -eu

app_dir="${ORO_APP_DIR:-$(pwd)}"
herald="${HERALD_BIN:-/usr/local/bin/herald}"

load_env_file() {
    [ -f "$1" ] || return 0
    # Only KEY=VALUE lines; a variable already in the environment is kept, as Symfony's Dotenv does.
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
            ''|'#'*) continue ;;
        esac
        key="${line%%=*}"
        case "$key" in
            *[!A-Za-z0-9_]*|'') continue ;;
        esac
        if eval "[ -z \"\${$key+x}\" ]"; then
            value="${line#*=}"
            # Strip one pair of surrounding quotes; expand ${VAR} references like Dotenv.
            case "$value" in
                \"*\") value="${value#\"}"; value="${value%\"}" ;;
                \'*\') value="${value#\'}"; value="${value%\'}" ;;
            esac
            value="$(eval "printf '%s' \"$value\"")"
            export "$key=$value"
        fi
    done < "$1"
}

load_env_file "$app_dir/.env-app.local"
load_env_file "$app_dir/.env-app"

exec "$herald" serve --profile oro "$@"
