// What a user of the mixin sets: override any of it with
//   (import 'mixin.libsonnet') + { _config+:: { selector: 'job="docker"' } }
{
  _config+:: {
    // Picks the exporter's series in every alert and recording rule, and the dashboard's job
    // variable: name your scrape job here.
    selector: 'job="docker-events-exporter"',

    // Crash loops: non-zero exits that no kill explains, and restarts, in 10 minutes.
    crashLoopingExits: 3,
    // Restart loops: restarts by the engine's restart policy in 10 minutes, any exit code.
    restartLoopingRestarts: 3,
    // Restarting (or left exited by a restart that failed) without a start for this long.
    stuckRestartingSeconds: 15 * 60,
    // Health `starting` this long after the container's start.
    healthStartingSeconds: 15 * 60,
    // Healthchecks: the failed share of probes and the least failures, in 15 minutes.
    healthcheckFlappingRatio: 0.2,
    healthcheckFlappingFailures: 3,
    // No event at all for this long while a container with a healthcheck runs.
    eventStreamSilentSeconds: 10 * 60,
    // A sink whose store has not taken the events of this long ago.
    sinkBehindSeconds: 5 * 60,

    // How long each alert's condition must hold before it fires.
    'for': {
      crashLooping: '2m',
      restartLooping: '2m',
      stuckRestarting: '1m',
      healthStartingTooLong: '1m',
      unhealthy: '5m',
      healthcheckFlapping: '5m',
      exitedNonZero: '5m',
      exporterDown: '5m',
      notSubscribed: '2m',
      eventStreamSilent: '5m',
      ruleActionsFailing: '5m',
      sinkFallingBehind: '10m',
    },

    // Where each alert's `runbook_url` points: the alert's section of docs/runbook.md.
    runbookURLPattern: 'https://github.com/docker-events-exporter/docker-events-exporter/blob/main/docs/runbook.md#%s',

    // The dashboard.
    dashboardUid: 'docker-events-overview',
    dashboardTitle: 'Docker events overview',
  },
}
