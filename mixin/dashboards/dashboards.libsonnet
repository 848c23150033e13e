// The dashboard: its panels are kept as Grafana writes them (docker-events-overview.json,
// edited in Grafana and exported), and this adds what the configuration and the lifecycle
// metrics decide: the job selector in the job variable, the last-exit panels.
local base = import 'docker-events-overview.json';

local ds = { type: 'prometheus', uid: '${datasource}' };
// The filters every container query carries (the dashboard's variables).
local vars = 'job=~"$job", instance=~"$instance", engine=~"$engine", compose_project=~"$compose_project", name=~"$name"';

// An exporter that watches several engines labels their series `engine` (one that watches
// one does not: `engine=~".*"` matches the empty label too). The queries as Grafana wrote them
// filter and group by instance; this adds the engine beside it.
local withEngine(expr) =
  local filtered = std.strReplace(expr, 'instance=~"$instance"', 'instance=~"$instance", engine=~"$engine"');
  local grouped = std.strReplace(std.strReplace(filtered, 'by (instance, ', 'by (instance, engine, '), 'by (instance)', 'by (instance, engine)');
  std.strReplace(grouped, 'on (instance, ', 'on (instance, engine, ');
local withEngineLegend(legend) = std.strReplace(legend, '{{instance}}', '{{instance}} {{engine}}');
local panelWithEngine(p) =
  if std.objectHas(p, 'targets') then
    p {
      targets: [
        t {
          [if std.objectHas(t, 'expr') then 'expr']: withEngine(t.expr),
          [if std.objectHas(t, 'legendFormat') then 'legendFormat']: withEngineLegend(t.legendFormat),
        }
        for t in p.targets
      ],
    }
  else p;
local engineVariable(selector) = {
  local query = 'label_values(docker_events_exporter_up{job=~"$job", instance=~"$instance"}, engine)',
  allValue: '.*',
  current: { selected: true, text: ['All'], value: ['$__all'] },
  datasource: ds,
  definition: query,
  description: 'The engines of an exporter that watches several (--docker.host NAME=URL, repeated); empty for one that watches one.',
  hide: 0,
  includeAll: true,
  label: 'Engine',
  multi: true,
  name: 'engine',
  options: [],
  query: { query: query, refId: 'engine' },
  refresh: 2,
  sort: 1,
  type: 'query',
};
local instantTable(refId, expr) = {
  datasource: ds,
  expr: expr,
  refId: refId,
  legendFormat: '',
  range: false,
  instant: true,
  format: 'table',
};
// Joins a table's queries on their labels (instance, name, ...), one row per container.
local merged(renames) = [
  { id: 'merge', options: {} },
  {
    id: 'organize',
    options: {
      excludeByName: { Time: true, __name__: true, job: true },
      renameByName: renames,
    },
  },
];
// A container's columns: its engine (with several), Swarm stack and service beside its name
// (empty outside Swarm).
local by = 'instance, engine, name, swarm_stack, swarm_service';
local swarmColumns = { engine: 'Engine', swarm_stack: 'Stack', swarm_service: 'Service' };
local lastExitCode = 'max by (%s) (docker_container_last_exit_code{%s})' % [by, vars];
local lastReason = 'max by (%s, reason) (docker_container_last_termination_reason{%s} == 1)' % [by, vars];

// "What is crashing" shows each container's last exit code and reason beside its exits.
local crashing(p) =
  local crashes = std.strReplace(
    p.targets[0].expr, 'sum by (instance, engine, name, image, compose_project)', 'sum by (%s, image, compose_project)' % by
  );
  local only = ' and on (instance, engine, name) (%s)' % crashes;
  p {
    description: 'Containers with non-zero exits in the selected time range, most first, with the exit code and reason of their last exit.',
    targets: [
      p.targets[0] { expr: crashes },
      instantTable('B', lastExitCode + only),
      instantTable('C', 'sum by (%s, reason) (%s)' % [by, lastReason + only]),
    ],
    transformations: merged(swarmColumns {
      'Value #A': 'Non-zero exits',
      'Value #B': 'Last exit code',
      reason: 'Last reason',
      'Value #C': '',
    }) + [{ id: 'filterFieldsByName', options: { include: { pattern: '^(?!Value #C).*' } } }],
    options+: { sortBy: [{ displayName: 'Non-zero exits', desc: true }] },
  };

local lastExits(y) = {
  type: 'table',
  title: 'Last exits',
  description: "How each container last ended: completed (exit code 0), error (non-zero, on its own), oom_killed, or killed (a kill came first: docker stop, kill or restart), with its exit code, when it finished, and the engine's count of restart-policy restarts. Newest first.",
  datasource: ds,
  gridPos: { h: 8, w: 24, x: 0, y: y },
  fieldConfig: {
    defaults: { unit: 'none' },
    overrides: [
      {
        matcher: { id: 'byName', options: 'Finished' },
        properties: [{ id: 'unit', value: 'dateTimeAsIso' }],
      },
    ],
  },
  options: { showHeader: true, sortBy: [{ displayName: 'Finished', desc: true }] },
  transformations: merged(swarmColumns {
    'Value #A': '',
    reason: 'Last reason',
    'Value #B': 'Last exit code',
    'Value #C': 'Finished',
    'Value #D': 'Policy restarts',
  }) + [{ id: 'filterFieldsByName', options: { include: { pattern: '^(?!Value #A).*' } } }],
  targets: [
    instantTable('A', lastReason),
    instantTable('B', lastExitCode),
    instantTable('C', '1000 * max by (%s) (docker_container_finished_timestamp_seconds{%s})' % [by, vars]),
    instantTable('D', 'max by (%s) (docker_container_restart_count{%s})' % [by, vars]),
  ],
};

// The sinks (--sink): how far each is behind, what it sends, and what it fails or skips.
local sinkPanel(id, title, description, unit, expr, legend, x, y) = panelWithEngine({
  type: 'timeseries',
  id: id,
  title: title,
  description: description,
  datasource: ds,
  gridPos: { h: 8, w: 8, x: x, y: y },
  fieldConfig: {
    defaults: { unit: unit, min: 0, custom: { drawStyle: 'line', fillOpacity: 10, showPoints: 'never' } },
    overrides: [],
  },
  options: {
    legend: { displayMode: 'table', placement: 'bottom', calcs: ['max', 'lastNotNull'] },
    tooltip: { mode: 'multi', sort: 'desc' },
  },
  targets: [{ datasource: ds, expr: expr, refId: 'A', legendFormat: legend, range: true, instant: false }],
});
local sinkRow(y, id) = [
  { type: 'row', id: id, title: 'Sinks', collapsed: false, gridPos: { h: 1, w: 24, x: 0, y: y }, panels: [] },
  sinkPanel(
    id + 1,
    'Sink lag',
    'How far each sink is behind: now minus the time of the oldest event its store has not taken (0 when it has them all). A line that climbs is a store that is down or slower than the events; they wait in --history.dir.',
    's',
    'max by (instance, sink) (docker_events_exporter_sink_lag_seconds{job=~"$job", instance=~"$instance"})',
    '{{instance}} {{sink}}',
    0,
    y + 1,
  ),
  sinkPanel(
    id + 2,
    'Events sent per second',
    "Events each sink's store has taken.",
    'ops',
    'sum by (instance, sink) (rate(docker_events_exporter_sink_events_sent_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))',
    '{{instance}} {{sink}}',
    8,
    y + 1,
  ),
  sinkPanel(
    id + 3,
    'Failed batches and skipped events',
    'Batches the store did not take, by reason (all but rejected are sent again), and events skipped for good (rejected by the store, or deleted by retention first).',
    'short',
    'sum by (instance, sink, reason) (increase(docker_events_exporter_sink_batches_failed_total{job=~"$job", instance=~"$instance"}[$__rate_interval])) or label_replace(sum by (instance, sink, reason) (increase(docker_events_exporter_sink_events_skipped_total{job=~"$job", instance=~"$instance"}[$__rate_interval])), "reason", "skipped: $1", "reason", "(.*)")',
    '{{instance}} {{sink}} {{reason}}',
    16,
    y + 1,
  ),
];

{
  grafanaDashboards+:: {
    local c = $._config,
    local jobQuery = 'label_values(docker_events_exporter_build_info{%s}, job)' % c.selector,
    // The new table goes below the "Now" row's tables; everything under it moves down.
    local insertAt = 13,
    local height = lastExits(0).gridPos.h,
    local panels = [
      if p.title == 'What is crashing' then crashing(p)
      else if p.gridPos.y >= insertAt then p { gridPos+: { y: p.gridPos.y + height } }
      else p
      for p in std.map(panelWithEngine, base.panels)
    ],
    local ids = std.foldl(std.max, [p.id for p in base.panels], 0),

    'docker-events-overview.json': base {
      uid: c.dashboardUid,
      title: c.dashboardTitle,
      templating+: {
        list: std.flattenArrays([
          if v.name == 'job' then [v { query+: { query: jobQuery }, definition: jobQuery }]
          else if v.name == 'instance' then [v, engineVariable(c.selector)]
          else if std.objectHas(v, 'definition') && v.name != 'datasource' then
            [v { definition: withEngine(v.definition), query+: { query: withEngine(v.query.query) } }]
          else [v]
          for v in base.templating.list
        ]),
      },
      local above = panels + [lastExits(insertAt)],
      local bottom = std.foldl(std.max, [p.gridPos.y + p.gridPos.h for p in above], 0),
      panels: panels + [lastExits(insertAt) { id: ids + 1 }] + sinkRow(bottom, ids + 2),
    },
  },
}
