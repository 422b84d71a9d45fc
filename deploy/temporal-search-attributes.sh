#!/bin/sh
# Creates the Temporal namespace Transit uses when it is missing, and
# registers Transit's custom search attributes (all of type Keyword) in it.
# The temporalio/server image creates no namespace, and Transit's workflows
# set these attributes when they start, so this must succeed before
# `transit server` and `transit worker` run.
#
# Run by the temporal-setup service in docker-compose.yml (image
# temporalio/admin-tools); it is safe to re-run: attributes that already exist
# with type Keyword are left alone, while one that exists with another type is
# an error.
#
# Environment:
#   TEMPORAL_ADDRESS     Temporal frontend, host:port (read by the temporal CLI too)
#   TEMPORAL_NAMESPACE   namespace to register them in (read by the temporal CLI too)
#   SEARCH_ATTRIBUTES    space-separated names to register as Keyword
#   RETENTION            how long the namespace keeps closed workflows, when this creates it (default 30d)
#   MAX_ATTEMPTS         how many times to poll Temporal before giving up (default 90)
#   SLEEP_SECONDS        pause between polls (default 2)
set -eu

: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS, e.g. temporal:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${SEARCH_ATTRIBUTES:?set SEARCH_ATTRIBUTES to the names to register}"
: "${RETENTION:=30d}"
: "${MAX_ATTEMPTS:=90}"
: "${SLEEP_SECONDS:=2}"
export TEMPORAL_ADDRESS TEMPORAL_NAMESPACE

# wait_for DESCRIPTION COMMAND... polls COMMAND until it succeeds.
wait_for() {
	what=$1
	shift
	attempt=1
	until "$@" >/dev/null 2>&1; do
		if [ "$attempt" -ge "$MAX_ATTEMPTS" ]; then
			echo "temporal-setup: gave up waiting for $what after $attempt attempts" >&2
			"$@" >&2 || true
			exit 1
		fi
		echo "temporal-setup: waiting for $what ($attempt/$MAX_ATTEMPTS)"
		attempt=$((attempt + 1))
		sleep "$SLEEP_SECONDS"
	done
}

# has_keyword NAME succeeds when NAME is registered with type Keyword.
has_keyword() {
	temporal operator search-attribute list \
		--address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" --output json 2>/dev/null |
		grep -Eiq "\"$1\"[[:space:]]*:[[:space:]]*\"(INDEXED_VALUE_TYPE_)?KEYWORD\""
}

wait_for "Temporal at $TEMPORAL_ADDRESS" \
	temporal operator cluster health --address "$TEMPORAL_ADDRESS"
if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
	echo "temporal-setup: namespace $TEMPORAL_NAMESPACE exists"
elif temporal operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" --retention "$RETENTION"; then
	echo "temporal-setup: created namespace $TEMPORAL_NAMESPACE (retention $RETENTION)"
fi
# A new namespace takes a moment to reach every frontend.
wait_for "namespace $TEMPORAL_NAMESPACE" \
	temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE"

for name in $SEARCH_ATTRIBUTES; do
	if has_keyword "$name"; then
		echo "temporal-setup: search attribute $name already exists (Keyword)"
		continue
	fi
	if out=$(temporal operator search-attribute create \
		--address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" \
		--name "$name" --type Keyword 2>&1); then
		echo "temporal-setup: added search attribute $name (Keyword)"
	elif has_keyword "$name"; then
		# Another process added it first; older servers answer "already exists".
		echo "temporal-setup: search attribute $name already exists (Keyword)"
	else
		echo "temporal-setup: could not add search attribute $name: $out" >&2
		exit 1
	fi
done
echo "temporal-setup: search attributes ready in namespace $TEMPORAL_NAMESPACE"
