#!/bin/sh
# Checks of the monitoring content (dashboards/, etc/prometheus-scrape.yml):
#   1. promtool check rules   on both rule files
#   2. promtool check config  on the Prometheus scrape snippet (syntax only: the rule
#                             paths in it are install paths)
#   3. promtool test rules    unit tests of every alert and recording rule
#   4. check_dashboards.py    the dashboards' JSON conventions and the provisioning example
#   5. e2e_prometheus.py      fake AWS + the exporter + a real Prometheus on 127.0.0.1
#   6. e2e_scale.py           an organization of 12 member accounts: 3 exporter shards (and a
#                             second replica of shard 0 sharing its S3 state), Prometheus
#                             agents remote-writing to a central Prometheus, on 127.0.0.1
# Every step runs; the exit status is 1 if any failed.
#
# Usage: tests/dashboards/run.sh [e2e_prometheus.py options] (e2e_scale.py takes none from here)
# Environment: BINARY (exporter, default ./bedrock-cost-exporter), PROMTOOL, PROMETHEUS.
set -u
cd "$(dirname "$0")/../.." || exit 1

PROMTOOL=${PROMTOOL:-promtool}
PROMETHEUS=${PROMETHEUS:-prometheus}
BINARY=${BINARY:-./bedrock-cost-exporter}
failed=""

step() {
	name=$1
	shift
	echo "== $name"
	if ! "$@"; then
		failed="$failed
  $name"
	fi
}

step "promtool check rules" "$PROMTOOL" check rules \
	dashboards/prometheus/bedrock-cost.rules.yml dashboards/prometheus/bedrock-cost.alerts.yml
step "promtool check config (scrape snippet)" "$PROMTOOL" check config --syntax-only \
	etc/prometheus-scrape.yml
step "promtool test rules" "$PROMTOOL" test rules tests/dashboards/*.test.yml
step "check_dashboards.py" python3 tests/dashboards/check_dashboards.py
step "e2e_prometheus.py" python3 tests/dashboards/e2e_prometheus.py \
	--binary "$BINARY" --prometheus "$(command -v "$PROMETHEUS" || echo "$PROMETHEUS")" "$@"
step "e2e_scale.py" python3 tests/dashboards/e2e_scale.py \
	--binary "$BINARY" --prometheus "$(command -v "$PROMETHEUS" || echo "$PROMETHEUS")"

if [ -n "$failed" ]; then
	echo "dashboards checks FAILED:$failed"
	exit 1
fi
echo "dashboards checks passed"
