// dashboards/: one file per dashboard (`jsonnet -m DIR`).
function(overrides={})
  local mixin = (import '../mixin.libsonnet') + overrides;
  mixin.grafanaDashboards
