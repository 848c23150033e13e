// alerts/docker-events-exporter.rules.yml, as YAML. An alert group gets the recording rules of
// the group of its name first: Prometheus evaluates one group's rules in order, so its alerts
// see the values recorded in the same evaluation (in groups of their own they may see the
// previous evaluation's, and promtool's results would depend on which group ran first).
// `overrides` is mixed into the mixin: `--tla-code overrides='{ _config+:: { ... } }'`.
function(overrides={})
  local mixin = (import '../mixin.libsonnet') + overrides;
  local recording = mixin.prometheusRules.groups;
  local alerting = mixin.prometheusAlerts.groups;
  local named(groups, name) = std.flattenArrays([g.rules for g in groups if g.name == name]);
  local alertGroups = [g.name for g in alerting];
  std.manifestYamlDoc(
    {
      groups: [g { rules: named(recording, g.name) + g.rules } for g in alerting]
              + [g for g in recording if !std.member(alertGroups, g.name)],
    },
    indent_array_in_object=true,
    quote_keys=false,
  )
