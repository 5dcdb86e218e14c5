#!/bin/sh
# Writes grafana-dashboard-10.4.schema.json next to this script: a JSON schema
# of the saved dashboard model, generated with ts-json-schema-generator from
# the TypeScript types that @grafana/schema 10.4.0 publishes (Grafana
# generates them from its CUE dashboard kind; 9.x publishes only runtime
# types). Unknown properties are allowed, as Grafana ignores them. Needs node
# and npm; the suite validates with python3-jsonschema and needs neither.
set -eu
out="$(cd "$(dirname "$0")" && pwd)/grafana-dashboard-10.4.schema.json"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm install --no-audit --no-fund --ignore-scripts --silent \
    @grafana/schema@10.4.0 ts-json-schema-generator@2.4.0 typescript@5
types=node_modules/@grafana/schema/dist/esm/raw/dashboard/x/dashboard_types.gen.d.ts
printf '{"compilerOptions": {"skipLibCheck": true}, "files": ["%s"]}\n' "$types" > tsconfig.json
npx ts-json-schema-generator --path "$types" --type Dashboard --tsconfig tsconfig.json \
    --no-type-check --additional-properties -o "$out"
echo "wrote $out"
