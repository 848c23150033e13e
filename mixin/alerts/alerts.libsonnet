// Alerts. Container series carry name, image, compose_project, compose_service (and any
// label_*), plus the instance and job of the exporter that saw them: the host; and the engine,
// when that exporter watches several. Every alert
// has a `runbook_url` to its section of docs/runbook.md, and a promtool test where it fires
// and one where it must not (tests/alerts/).
{
  prometheusAlerts+:: {
    local c = $._config,
    local s = c.selector,
    local runbook(alert) = { runbook_url: c.runbookURLPattern % std.asciiLower(alert) },
    // Where it happened: the host, and the engine when the exporter watches several (their
    // series carry `engine`; for one engine this adds nothing).
    local where = '{{ $labels.instance }}{{ with $labels.engine }} (engine {{ . }}){{ end }}',
    local alert(name, severity, expr, annotations, forDuration=null) =
      { alert: name, expr: expr } +
      (if forDuration == null then {} else { 'for': forDuration }) +
      {
        labels: { severity: severity },
        annotations: std.mapWithKey(
          function(_, text) std.strReplace(text, '{{ $labels.instance }}', where), annotations
        ) + runbook(name),
      },
    // CrashLooping's condition; RestartLooping leaves these loops to it, so one loop pages once.
    local crashLooping = |||
      docker_container:crash_exits:increase10m >= %(crashLoopingExits)s
      and
      increase(docker_container_restarts_total{%(selector)s}[10m]) >= %(crashLoopingExits)s
    ||| % c,
    // The last start, for the alerts that ask "for how long now".
    local sinceStart = '(time() - docker_container_started_timestamp_seconds{%s})' % s,

    groups+: [
      {
        name: 'docker-containers',
        rules: [
          // 3 crash exits and 3 restarts in 10 minutes. Docker's restart policy backs off
          // 100 ms, 200 ms, ... up to 1 minute, so a container that keeps failing restarts at
          // least 10 times in 10 minutes; 3 catches it within its first minute. `for: 2m` lets
          // a container that crashes twice at start-up and then settles stay quiet.
          alert('DockerContainerCrashLooping', 'critical', crashLooping, {
            summary: 'Container {{ $labels.name }} on {{ $labels.instance }} is crash-looping',
            description: |||
              Container {{ $labels.name }} (image {{ $labels.image }}, compose project
              "{{ $labels.compose_project }}", service "{{ $labels.compose_service }}") on
              {{ $labels.instance }} died on its own {{ $value | printf "%.0f" }} times in the
              last 10 minutes and was started again each time.
              First check: `docker logs --tail 50 {{ $labels.name }}` for the error it dies with,
              and `docker inspect -f '{{ "{{" }}.State.ExitCode{{ "}}" }} {{ "{{" }}.State.OOMKilled{{ "}}" }}' {{ $labels.name }}`.
              Exit code 137 without OOMKilled means something killed it; 1 or 2 is the program's own error.
            |||,
            runbook: "Look at the last exit code on the dashboard's exit-code panel; fix the config or image, or stop the container to end the loop.",
          }, c['for'].crashLooping),

          // The engine's restart policy restarted it 3+ times in 10 minutes, whatever the exit
          // code: a one-shot under `restart: always`, a server that daemonises and exits 0. The
          // engine's RestartCount counts policy restarts only (a person's `docker start` or
          // `docker restart` sets it back to 0, which increase() reads as a reset). A loop that
          // CrashLooping already reports is left to it.
          alert('DockerContainerRestartLooping', 'warning', |||
            increase(docker_container_restart_count{%(selector)s}[10m]) >= %(restartLoopingRestarts)s
            unless
          ||| % c + '(\n' + crashLooping + ')\n', {
            summary: 'Container {{ $labels.name }} on {{ $labels.instance }} keeps being restarted by its restart policy',
            description: |||
              The engine restarted container {{ $labels.name }} (image {{ $labels.image }}, compose
              project "{{ $labels.compose_project }}") on {{ $labels.instance }}
              {{ $value | printf "%.0f" }} times in the last 10 minutes by its restart policy (a loop
              of exits with an error is reported as DockerContainerCrashLooping instead).
              First check: its last exit code and reason on the dashboard, then what its command
              does: `docker inspect -f '{{ "{{" }}.Path{{ "}}" }} {{ "{{" }}.Args{{ "}}" }}' {{ $labels.name }}`.
              A program that exits 0 at once under `restart: always` is a one-shot or daemonises.
            |||,
          }, c['for'].restartLooping),

          // Restarting without a start for 15 minutes, or left `exited` by a restart that failed:
          // with `always` or `unless-stopped` and not stopped by a person (the engine gives up on
          // a restart whose start fails, with no event; the exporter asks it again after 90 s).
          alert('DockerContainerStuckRestarting', 'warning', |||
            %(sinceStart)s > %(stuckRestartingSeconds)s
            and ignoring (state)
            (
              docker_container_state{%(selector)s, state="restarting"} == 1
              or
              (
                docker_container_state{%(selector)s, state="exited"} == 1
                and ignoring (state, image_id, restart_policy)
                docker_container_info{%(selector)s, restart_policy=~"always|unless-stopped"}
                and ignoring (state, reason)
                docker_container_last_termination_reason{%(selector)s, reason="killed"} == 0
              )
            )
          ||| % (c { sinceStart: sinceStart }), {
            summary: 'Container {{ $labels.name }} on {{ $labels.instance }} is not coming back up',
            description: |||
              Container {{ $labels.name }} (image {{ $labels.image }}) on {{ $labels.instance }} has
              not started for {{ $value | humanizeDuration }}, though its restart policy should
              start it again: it is restarting, or a restart failed and left it exited.
              First check: the engine's error for the failed start,
              `docker inspect -f '{{ "{{" }}.State.Error{{ "}}" }}' {{ $labels.name }}`, then
              `journalctl -u docker` around that time.
            |||,
          }, c['for'].stuckRestarting),

          // Health `starting` for 15 minutes since the start: no probe has passed, and not
          // enough have failed in a row (or the start period has not ended) to call it
          // unhealthy. Health goes back to `starting` only with a new start.
          alert('DockerContainerHealthStartingTooLong', 'warning', |||
            %(sinceStart)s > %(healthStartingSeconds)s
            and ignoring (status)
            docker_container_health_status{%(selector)s, status="starting"} == 1
          ||| % (c { sinceStart: sinceStart }), {
            summary: 'Container {{ $labels.name }} on {{ $labels.instance }} has been starting for {{ $value | humanizeDuration }}',
            description: |||
              The healthcheck of container {{ $labels.name }} (image {{ $labels.image }}) on
              {{ $labels.instance }} has not passed in the {{ $value | humanizeDuration }} since it
              started.
              First check: the probes' output,
              `docker inspect -f '{{ "{{" }}json .State.Health{{ "}}" }}' {{ $labels.name }}`, and its
              start period and retries (`docker inspect -f '{{ "{{" }}json .Config.Healthcheck{{ "}}" }}' {{ $labels.name }}`).
            |||,
          }, c['for'].healthStartingTooLong),

          // Fires on the first OOM kill, also of a container killed before its first scrape.
          // It clears 10 minutes after the last kill.
          alert('DockerContainerOOMKilled', 'warning', 'docker_container:oom_kills:increase10m > 0', {
            summary: 'Container {{ $labels.name }} on {{ $labels.instance }} was OOM-killed',
            description: |||
              The kernel killed a process of container {{ $labels.name }} (image {{ $labels.image }})
              on {{ $labels.instance }} for exceeding its memory limit, {{ $value | printf "%.0f" }}
              time(s) in the last 10 minutes.
              First check: its limit (`docker inspect -f '{{ "{{" }}.HostConfig.Memory{{ "}}" }}' {{ $labels.name }}`)
              against its usage (`docker stats --no-stream {{ $labels.name }}`); raise the limit or find the leak.
            |||,
          }),

          // The engine marks a container unhealthy after --health-retries failed probes in a
          // row (3 by default, every 30 s). 5 more minutes rule out a blip during a deploy.
          alert('DockerContainerUnhealthy', 'warning', 'docker_container_health_status{%(selector)s, status="unhealthy"} == 1' % c, {
            summary: 'Container {{ $labels.name }} on {{ $labels.instance }} is unhealthy',
            description: |||
              Container {{ $labels.name }} (image {{ $labels.image }}) on {{ $labels.instance }}
              has failed its healthcheck for at least 5 minutes.
              First check: the probe's own output,
              `docker inspect -f '{{ "{{" }}json .State.Health.Log{{ "}}" }}' {{ $labels.name }}`.
            |||,
          }, c['for'].unhealthy),

          // Still "healthy" (failures never reached --health-retries in a row) but more than a
          // fifth of its probes failed over 15 minutes, with at least 3 failures: the service
          // is degraded before the engine says so.
          alert('DockerContainerHealthcheckFlapping', 'warning', |||
            (
              increase(docker_container_healthchecks_total{%(selector)s, result="failure"}[15m])
              / ignoring (result)
              sum without (result) (increase(docker_container_healthchecks_total{%(selector)s}[15m]))
            ) > %(healthcheckFlappingRatio)s
            and ignoring (result)
            increase(docker_container_healthchecks_total{%(selector)s, result="failure"}[15m]) >= %(healthcheckFlappingFailures)s
            and ignoring (status)
            docker_container_health_status{%(selector)s, status="healthy"} == 1
          ||| % c, {
            summary: 'Healthchecks of {{ $labels.name }} on {{ $labels.instance }} fail often',
            description: |||
              {{ $value | humanizePercentage }} of the healthcheck probes of container
              {{ $labels.name }} (image {{ $labels.image }}) on {{ $labels.instance }} failed in the
              last 15 minutes, though it is still reported healthy.
              First check: the failing probes' output,
              `docker inspect -f '{{ "{{" }}json .State.Health.Log{{ "}}" }}' {{ $labels.name }}`,
              and the probe latency panel: probes near their timeout fail intermittently.
            |||,
          }, c['for'].healthcheckFlapping),

          // Died on its own (a crash exit) in the last hour and is still down. Containers
          // stopped with docker stop or removed do not fire. It resolves when the container
          // runs again, is removed, or an hour after the exit.
          alert('DockerContainerExitedNonZero', 'warning', |||
            docker_container:crash_exits:increase1h > 0
            and ignoring (state)
            docker_container_state{%(selector)s, state="exited"} == 1
          ||| % c, {
            summary: 'Container {{ $labels.name }} on {{ $labels.instance }} exited with an error and stayed down',
            description: |||
              Container {{ $labels.name }} (image {{ $labels.image }}, compose project
              "{{ $labels.compose_project }}") on {{ $labels.instance }} exited non-zero on its
              own and has not been started again for 5 minutes.
              First check: `docker logs --tail 50 {{ $labels.name }}` and its restart policy
              (`docker inspect -f '{{ "{{" }}.HostConfig.RestartPolicy.Name{{ "}}" }}' {{ $labels.name }}`).
            |||,
          }, c['for'].exitedNonZero),
        ],
      },
      {
        name: 'docker-events-exporter',
        rules: [
          // Prometheus cannot scrape the exporter.
          alert('DockerEventsExporterDown', 'critical', 'up{%(selector)s} == 0' % c, {
            summary: 'docker-events-exporter on {{ $labels.instance }} is down',
            description: |||
              Prometheus has not scraped the exporter on {{ $labels.instance }} for 5 minutes: no
              container alert for that host can fire.
              First check: `docker ps -a --filter name=docker-events-exporter` and its logs on
              that host, then the network path from Prometheus.
            |||,
          }, c['for'].exporterDown),

          // Scraped, but not subscribed to the engine's events: the engine is down, the socket
          // is not mounted or not readable, or the connection keeps failing.
          alert('DockerEventsExporterNotSubscribed', 'critical', 'docker_events_exporter_up{%(selector)s} == 0' % c, {
            summary: 'docker-events-exporter on {{ $labels.instance }} is not subscribed to the Docker Engine',
            description: |||
              The exporter on {{ $labels.instance }} has not been subscribed to the engine's
              event stream for 2 minutes; it retries with backoff and logs why at warn level.
              First check: its log ("cannot reach the Docker Engine" or "event stream lost"),
              then `docker info` on that host and the socket mount and permissions.
            |||,
          }, c['for'].notSubscribed),

          // Containers with a healthcheck produce exec events at every probe (every 30 s by
          // default), so 10 minutes without any event while such a container runs means the
          // stream is stuck, whatever the exporter believes.
          alert('DockerEventStreamSilent', 'warning', |||
            (time() - docker_events_exporter_last_event_timestamp_seconds{%(selector)s}) > %(eventStreamSilentSeconds)s
            and on (instance, job, engine)
            count by (instance, job, engine) (docker_container_health_status{%(selector)s} == 1) > 0
          ||| % c, {
            summary: 'No Docker events from {{ $labels.instance }} for {{ $value | humanizeDuration }}',
            description: |||
              The exporter on {{ $labels.instance }} has seen no event for
              {{ $value | humanizeDuration }}, though containers with healthchecks run there
              and probe every few seconds to minutes.
              First check: the exporter's log and `docker_events_exporter_reconnects_total`;
              restarting the exporter resubscribes.
            |||,
          }, c['for'].eventStreamSilent),

          // Rule actions (--config) that failed or timed out in the last 15 minutes.
          alert('DockerEventsExporterRuleActionsFailing', 'warning', |||
            sum by (instance, job, rule, action) (
              (
                docker_events_exporter_actions_total{%(selector)s, outcome=~"failure|timeout"}
                unless docker_events_exporter_actions_total{%(selector)s, outcome=~"failure|timeout"} offset 15m
              )
              or increase(docker_events_exporter_actions_total{%(selector)s, outcome=~"failure|timeout"}[15m])
            ) > 0
          ||| % c, {
            summary: 'Rule {{ $labels.rule }} ({{ $labels.action }}) on {{ $labels.instance }} keeps failing',
            description: |||
              The {{ $labels.action }} action of rule "{{ $labels.rule }}" on {{ $labels.instance }}
              failed or timed out {{ $value | printf "%.0f" }} times in the last 15 minutes.
              First check: the exporter's log for the action's error (exit status and stderr
              tail, or HTTP status), and whether its target is reachable.
            |||,
          }, c['for'].ruleActionsFailing),

          // The action queue was full: actions are slower than the events that trigger them.
          alert('DockerEventsExporterRuleActionsDropped', 'warning', |||
            sum by (instance, job, rule, action) (
              (
                docker_events_exporter_actions_total{%(selector)s, outcome="dropped"}
                unless docker_events_exporter_actions_total{%(selector)s, outcome="dropped"} offset 15m
              )
              or increase(docker_events_exporter_actions_total{%(selector)s, outcome="dropped"}[15m])
            ) > 0
          ||| % c, {
            summary: 'Rule actions dropped on {{ $labels.instance }}',
            description: |||
              {{ $value | printf "%.0f" }} {{ $labels.action }} actions of rule "{{ $labels.rule }}"
              on {{ $labels.instance }} were dropped in the last 15 minutes because the action
              queue was full. Metrics are unaffected; the actions did not run.
              First check: the action's duration panel (a slow target), then add a `throttle` or
              `batch` to the rule.
            |||,
          }),

          // A sink (--sink) whose store has not taken events for a while: it is down, refuses
          // to take more, or is slower than the events.
          alert('DockerEventsExporterSinkFallingBehind', 'warning', |||
            max by (instance, job, sink) (
              docker_events_exporter_sink_lag_seconds{%(selector)s}
            ) > %(sinkBehindSeconds)s
          ||| % c, {
            summary: 'Sink {{ $labels.sink }} on {{ $labels.instance }} is falling behind',
            description: |||
              The store behind sink {{ $labels.sink }} on {{ $labels.instance }} has not taken
              the events of the last {{ $value | humanizeDuration }}. They wait in --history.dir
              and are sent when it takes them, unless retention deletes them first.
              First check: the exporter's log for the sink's error, and whether the store is
              reachable and accepting writes.
            |||,
          }, c['for'].sinkFallingBehind),

          // Events a sink will never send: its store refused them, or retention deleted them
          // before they were sent.
          alert('DockerEventsExporterSinkSkippingEvents', 'warning', |||
            sum by (instance, job, sink, reason) (
              (
                docker_events_exporter_sink_events_skipped_total{%(selector)s}
                unless docker_events_exporter_sink_events_skipped_total{%(selector)s} offset 15m
              )
              or increase(docker_events_exporter_sink_events_skipped_total{%(selector)s}[15m])
            ) > 0
          ||| % c, {
            summary: 'Sink {{ $labels.sink }} on {{ $labels.instance }} skipped events',
            description: |||
              Sink {{ $labels.sink }} on {{ $labels.instance }} skipped {{ $value | printf "%.0f" }}
              events in the last 15 minutes ({{ $labels.reason }}): its store will never have them.
              First check: the exporter's log, which names the store's answer or the range lost.
            |||,
          }),
        ],
      },
    ],
  },
}
