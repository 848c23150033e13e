// Recording rules. Counters labelled by value (exits by exit_code, kills by signal) are created
// by their first event, so `increase()` alone would miss that first crash. These count a series
// that appeared within the window at its full value:
//   (m unless m offset W) or increase(m[W])
// "Crash exits" are non-zero exits that no `kill` event explains: `docker stop`, `docker kill`
// and `docker restart` send a kill event, so a container stopped on purpose has none; a process
// that fails by itself (or is OOM-killed) has one per death.
local bornOrIncrease(metric, window, indent='') =
  '%(i)s(%(m)s unless %(m)s offset %(w)s)\n%(i)sor increase(%(m)s[%(w)s])' % { m: metric, w: window, i: indent };

{
  prometheusRules+:: {
    local c = $._config,
    local exitsNonZero = 'docker_container_exits_total{%(selector)s, exit_code!="0"}' % c,
    local kills = 'docker_container_kills_total{%(selector)s}' % c,
    local crashRules(window) = [
      {
        record: 'docker_container:exits_nonzero:increase%s' % window,
        expr: 'sum without (exit_code) (\n%s\n)\n' % bornOrIncrease(exitsNonZero, window, '  '),
      },
      {
        record: 'docker_container:kills:increase%s' % window,
        expr: 'sum without (signal) (\n%s\n)\n' % bornOrIncrease(kills, window, '  '),
      },
      {
        record: 'docker_container:crash_exits:increase%s' % window,
        expr: |||
          docker_container:exits_nonzero:increase%(w)s
          - (docker_container:kills:increase%(w)s or docker_container:exits_nonzero:increase%(w)s * 0)
        ||| % { w: window },
      },
    ],
    groups+: [
      {
        name: 'docker-containers',
        rules: crashRules('10m') + crashRules('1h') + [
          {
            record: 'docker_container:oom_kills:increase10m',
            expr: bornOrIncrease('docker_container_oom_kills_total{%(selector)s}' % c, '10m') + '\n',
          },
        ],
      },
    ],
  },
}
