// alerts/docker-events-exporter.rules.yml: the recording rules, then the alerts, as YAML.
// `overrides` is mixed into the mixin: `--tla-code overrides='{ _config+:: { ... } }'`.
function(overrides={})
  local mixin = (import '../mixin.libsonnet') + overrides;
  std.manifestYamlDoc(
    { groups: mixin.prometheusRules.groups + mixin.prometheusAlerts.groups },
    indent_array_in_object=true,
    quote_keys=false,
  )
