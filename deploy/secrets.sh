#!/usr/bin/env bash
# Makes the secrets of docker-compose.yml under ./secrets (random, mode 0600,
# never overwritten) and a .env with the non-secret settings to fill in.
#   deploy/secrets.sh        # for real NCMEC and Salesforce: edit .env after
#   deploy/secrets.sh -sim   # a .env pointing at the simulators (--profile sim)
# NCMEC and Salesforce secrets are placeholders: write the real ones into
# secrets/ncmec_password and secrets/salesforce_client_secret.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
mkdir -p secrets
rnd() { head -c "$1" /dev/urandom | base64 | tr -d '/+=\n' | head -c "$1"; }
put() { [[ -e secrets/$1 ]] || printf '%s' "$2" > "secrets/$1"; }

put postgres_password "$(rnd 32)"
put database_url "postgres://takedown:$(cat secrets/postgres_password)@postgres:5432/takedown?sslmode=disable"
put s3_access_key "takedown$(rnd 12)"
put s3_secret_key "$(rnd 40)"
# A 32-byte master key with id k1 (docs/operator-guide.md: key rotation).
put master_keys "k1:$(head -c 32 /dev/urandom | base64)"
put dev_token "$(rnd 32)"
put ncmec_password "$(rnd 24)"
put salesforce_client_secret "$(rnd 32)"
put grafana_admin_password "$(rnd 24)"
for s in intake ncmec_reporter case_writer audit_logger retraction; do put "nats_password_$s" "$(rnd 32)"; done
# The container users (non-root) read the secret files.
chmod 0644 secrets/*

if [[ ! -e .env ]]; then
  {
    echo "MASTER_KEY_ID=k1"
    for s in intake ncmec_reporter case_writer audit_logger retraction; do
      echo "NATS_PASSWORD_${s^^}=$(cat "secrets/nats_password_$s")"
    done
    if [[ "${1:-}" == -sim ]]; then
      echo "NCMEC_URL=http://ncmecsim:8090/ispws"
      echo "SALESFORCE_URL=http://sfsim:8091"
      echo "RETRACTION_URL=http://retraction:8081"
      # The simulators speak plain http: never in production.
      echo "DEV_ALLOW_HTTP=true"
    else
      echo "NCMEC_URL=https://report.cybertip.org/ispws"
      echo "SALESFORCE_URL=https://YOUR-ORG.my.salesforce.com"
      echo "RETRACTION_URL=https://retraction.CHANGE-ME.example"
    fi
    echo "NCMEC_USERNAME=CHANGE-ME"
    echo "NCMEC_REPORTER_FIRST_NAME=CHANGE-ME"
    echo "NCMEC_REPORTER_LAST_NAME=CHANGE-ME"
    echo "NCMEC_REPORTER_EMAIL=CHANGE-ME@example.com"
    echo "SALESFORCE_CLIENT_ID=CHANGE-ME"
  } > .env
  chmod 0600 .env
fi
echo "secrets in ./secrets, settings in ./.env"
