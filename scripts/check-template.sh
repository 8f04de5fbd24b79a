#!/usr/bin/env bash
# Checks the SAM application: lints the template, scans it for security findings (as written
# and as deployed, after the SAM transform), builds it, and asserts the build holds only what
# Lambda runs. Offline apart from PyPI (sam build installs the layer's locked dependencies for
# arm64); it never calls AWS and never uses Docker.
#
# Usage, from the repo root, with sam, cfn-lint, checkov and python3.12 (with aws-sam-translator,
# as in the tools venv `make template-check` makes) on PATH:
#   bash scripts/check-template.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUNCTIONS=(FetchFunction DiffFunction WriterFunction WebhookFunction)
LAYER=CoreLayer
BUILD_DIR=.aws-sam/build
TRANSFORMED=.aws-sam/transformed-template.json
# Our own checkov policies (each file says what it guards), run with checkov's.
POLICIES=scripts/checkov
# Lambda's limit for a function plus its layers, unzipped.
MAX_UNZIPPED_BYTES=$((250 * 1024 * 1024))

export SAM_CLI_TELEMETRY=0
export BC_SKIP_MAPPING=TRUE # checkov: no download of guideline links
# sam validate transforms the template locally but wants a region; nothing is called.
export AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-eu-west-1}}"
export AWS_DEFAULT_REGION="$AWS_REGION"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

for tool in sam cfn-lint checkov python3.12 zip; do
    command -v "$tool" >/dev/null || fail "$tool is not on PATH (sam build needs python3.12 for runtime python3.12)"
done

step "sam validate --lint"
sam validate --lint --template-file template.yaml

step "cfn-lint"
cfn-lint template.yaml && echo "no findings"

# Skips are justified in each resource's Metadata, one comment each; SAM's generated resources
# inherit those of the resource they come from.
step "checkov: template.yaml"
checkov -f template.yaml --framework cloudformation --external-checks-dir "$POLICIES" --quiet --compact

step "checkov: the template as deployed (SAM transform: roles, schedule, URL, permissions)"
mkdir -p "$(dirname "$TRANSFORMED")"
python3.12 scripts/sam-transform.py template.yaml >"$TRANSFORMED"
checkov -f "$TRANSFORMED" --framework cloudformation --external-checks-dir "$POLICIES" --quiet --compact

step "sam build (arm64, no container)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! sam build --template-file template.yaml --build-dir "$BUILD_DIR" >"$log" 2>&1; then
    cat "$log"
    fail "sam build failed"
fi
grep -E "^Build Succeeded" "$log" || true

step "build contents"
# What must never ship: tests, the local runner and its emulators, moto.
local_only() { # $1: dir; prints offending paths
    find "$1" \( -name tests -o -name test -o -name 'test_*.py' -o -name '*_test.py' -o -name conftest.py \
        -o -name coa_sync_local -o -name emulators -o -name moto -o -name 'moto-*' \) -print
}
for fn in "${FUNCTIONS[@]}"; do
    dir="$BUILD_DIR/$fn"
    [[ -d "$dir" ]] || fail "$fn: no build dir $dir"
    [[ -f "$dir/app.py" ]] || fail "$fn: $dir/app.py missing"
    bad=$(local_only "$dir")
    [[ -z "$bad" ]] || fail "$fn ships what Lambda does not run:"$'\n'"$bad"
    # The core package belongs to the layer; a copy here would shadow it.
    [[ ! -e "$dir/coa_sync" ]] || fail "$fn: ships its own coa_sync; it must come from the layer"
    echo "ok  $fn: app.py, no tests or emulators"
done
site="$BUILD_DIR/$LAYER/python"
[[ -f "$site/coa_sync/__init__.py" ]] || fail "$LAYER: $site/coa_sync/__init__.py missing"
bad=$(local_only "$site/coa_sync")
[[ -z "$bad" ]] || fail "$LAYER's coa_sync ships what Lambda does not run:"$'\n'"$bad"
# Third-party packages may carry their own tests; the local tools and moto must not be there at all.
bad=$(find "$site" -maxdepth 1 \( -name coa_sync_local -o -name 'coa_sync_local-*' -o -name moto -o -name 'moto-*' \) -print)
[[ -z "$bad" ]] || fail "$LAYER ships local-only packages:"$'\n'"$bad"
echo "ok  $LAYER: python/coa_sync, no coa_sync_local, tests or moto"
# Lambda's /opt is read-only: without bytecode in the layer every cold start compiles it.
[[ -n "$(find "$site/coa_sync" -name '*.cpython-312.pyc' -print -quit)" ]] \
    || fail "$LAYER ships no Python 3.12 bytecode (see layers/core/Makefile)"
echo "ok  $LAYER: precompiled for Python 3.12"
# The runtime has boto3 and botocore as a matched pair; a copy in the layer would shadow it
# (the tracer's aws-xray-sdk asks for botocore: the lock leaves it out, see runtime-provided.txt).
bad=$(find "$site" -maxdepth 1 \( -name 'boto3*' -o -name 'botocore*' -o -name 's3transfer*' \) -print)
[[ -z "$bad" ]] || fail "$LAYER ships the AWS SDK the Lambda runtime already has:"$'\n'"$bad"
echo "ok  $LAYER: no boto3 or botocore (the runtime's are used)"

step "sizes (unzipped / zipped)"
zips=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$zips"' EXIT
bytes() { du -sb "$1" | cut -f1; }
size_of() { # $1: name, $2: dir
    (cd "$2" && zip -qrX "$zips/$1.zip" .)
    printf '%-16s %8s unzipped (du -sh) %8s zipped\n' "$1" "$(du -sh "$2" | cut -f1)" \
        "$(numfmt --to=iec --suffix=B "$(stat -c %s "$zips/$1.zip")")"
}
layer_bytes=$(bytes "$BUILD_DIR/$LAYER")
for fn in "${FUNCTIONS[@]}"; do
    size_of "$fn" "$BUILD_DIR/$fn"
    total=$(($(bytes "$BUILD_DIR/$fn") + layer_bytes))
    ((total <= MAX_UNZIPPED_BYTES)) || fail "$fn plus $LAYER is $total bytes unzipped; Lambda allows $MAX_UNZIPPED_BYTES"
done
size_of "$LAYER" "$BUILD_DIR/$LAYER"

printf '\nall template checks passed\n'
