// The docker-events-exporter monitoring mixin: alerts, recording rules and the dashboard,
// laid out as node-mixin and kubernetes-mixin are. `lib/` renders them into the repository's
// alerts/ and dashboards/ (mixin/render.sh).
(import 'config.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
