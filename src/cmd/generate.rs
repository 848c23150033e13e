//! A generator of realistic event files, in the format `docker events --format '{{json .}}'`
//! writes: container lifecycles (create, start, healthcheck probes, user execs, kills, OOM
//! kills, restarts, pauses, deaths, removal) over many containers, with network, volume and
//! image events between them, in the shape of Engine 20.10 (with the legacy `status`, `id`,
//! `from`) or Engine 29 (without). Deterministic for a seed: benchmarks and tests replay the
//! same input. With `chaotic`, each object's keys come in a random order, as a log that went
//! through another tool has them: the same events, none of them in the engine's own form.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

/// Which engine's event shape to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Engine 20.10 (API 1.41): with `status`, `id` and `from`.
    #[value(name = "20.10")]
    Engine20,
    /// Engine 29 (API 1.52): without them.
    #[value(name = "29")]
    Engine29,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub events: u64,
    /// Containers alive at once.
    pub containers: usize,
    pub shape: Shape,
    pub seed: u64,
    /// Every container is created, started, dies and is removed, under a name never used
    /// again: the worst case for series memory.
    pub churn: bool,
    /// Each object's keys in a random order (the events are those of the same spec without).
    pub chaotic: bool,
    /// Event time of the first event, nanoseconds since the epoch.
    pub start_nano: i64,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            events: 1_000_000,
            containers: 200,
            shape: Shape::Engine29,
            seed: 1,
            churn: false,
            chaotic: false,
            start_nano: 1_767_225_600_000_000_000,
        }
    }
}

/// xorshift64*: small, fast and deterministic; statistical quality is beside the point here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Absent,
    Created,
    Running,
    Paused,
    Exited,
}

struct Slot {
    id: String,
    name: String,
    image: &'static str,
    labels: Vec<(&'static str, String)>,
    healthcheck: Option<&'static str>,
    phase: Phase,
    generation: u64,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(rename = "Type")]
    typ: &'a str,
    #[serde(rename = "Action")]
    action: &'a str,
    #[serde(rename = "Actor")]
    actor: Actor<'a>,
    scope: &'a str,
    time: i64,
    #[serde(rename = "timeNano")]
    time_nano: i64,
}

#[derive(Serialize)]
struct Actor<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Attributes")]
    attributes: BTreeMap<&'a str, &'a str>,
}

const IMAGES: &[&str] = &[
    "nginx:1.25",
    "postgres:16",
    "redis:7",
    "registry.example.com/shop/api:2.3.1",
    "busybox:latest",
];
const HEALTHCHECKS: &[&str] = &[
    "/bin/sh -c curl -fsS localhost/health",
    "pg_isready -U postgres",
    "redis-cli ping",
];

struct Writer<'w, W: Write> {
    out: &'w mut W,
    shape: Shape,
    time_nano: i64,
    rng: Rng,
    /// Shuffles keys when chaotic: a generator of its own, so that the events are the same.
    shuffle: Option<Rng>,
    written: u64,
}

impl<W: Write> Writer<'_, W> {
    fn emit(
        &mut self,
        typ: &str,
        action: &str,
        actor_id: &str,
        attrs: &[(&str, &str)],
    ) -> io::Result<()> {
        self.time_nano += 50_000 + i64::try_from(self.rng.below(2_000_000)).unwrap_or(0);
        let legacy = self.shape == Shape::Engine20 && typ == "container";
        let from = attrs.iter().find(|(k, _)| *k == "image").map(|(_, v)| *v);
        let line = Line {
            status: legacy.then_some(action),
            id: legacy.then_some(actor_id),
            from: if legacy { from } else { None },
            typ,
            action,
            actor: Actor {
                id: actor_id,
                attributes: attrs.iter().copied().collect(),
            },
            scope: "local",
            time: self.time_nano / 1_000_000_000,
            time_nano: self.time_nano,
        };
        match &mut self.shuffle {
            None => serde_json::to_writer(&mut *self.out, &line)?,
            Some(rng) => write_shuffled(&mut *self.out, &serde_json::to_value(&line)?, rng)?,
        }
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }
}

/// `value` as compact JSON, the keys of each object in a random order.
fn write_shuffled<W: Write>(
    out: &mut W,
    value: &serde_json::Value,
    rng: &mut Rng,
) -> io::Result<()> {
    let serde_json::Value::Object(map) = value else {
        return serde_json::to_writer(out, value).map_err(io::Error::from);
    };
    let mut entries: Vec<_> = map.iter().collect();
    // Fisher-Yates.
    for i in (1..entries.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(0);
        entries.swap(i, j);
    }
    out.write_all(b"{")?;
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, k)?;
        out.write_all(b":")?;
        write_shuffled(out, v, rng)?;
    }
    out.write_all(b"}")
}

fn hex_id(rng: &mut Rng) -> String {
    (0..4).map(|_| format!("{:016x}", rng.next())).collect()
}

/// Writes `spec.events` events (a lifecycle in progress may run a few past it).
pub fn generate<W: Write>(spec: &Spec, out: &mut W) -> io::Result<u64> {
    let mut rng = Rng(spec.seed.max(1) ^ 0x9E37_79B9_7F4A_7C15);
    let mut slots: Vec<Slot> = (0..spec.containers.max(1))
        .map(|i| {
            let compose = rng.chance(60);
            let project = ["shop", "billing", "monitoring"][i % 3];
            let service = ["api", "worker", "db", "cache", "web"][i % 5];
            let mut labels = Vec::new();
            if compose {
                labels.push(("com.docker.compose.project", project.to_owned()));
                labels.push(("com.docker.compose.service", service.to_owned()));
            }
            labels.push(("maintainer", "team-a@example.com".to_owned()));
            Slot {
                id: hex_id(&mut rng),
                name: if compose {
                    format!("{project}-{service}-{i}")
                } else {
                    format!("app-{i}")
                },
                image: IMAGES[i % IMAGES.len()],
                labels,
                healthcheck: if rng.chance(50) {
                    Some(HEALTHCHECKS[i % HEALTHCHECKS.len()])
                } else {
                    None
                },
                phase: Phase::Absent,
                generation: 0,
            }
        })
        .collect();
    let mut w = Writer {
        out,
        shape: spec.shape,
        time_nano: spec.start_nano,
        rng: Rng(spec.seed.wrapping_add(7)),
        shuffle: spec.chaotic.then(|| Rng(spec.seed.wrapping_add(11))),
        written: 0,
    };
    let mut exec_n: u64 = 0;
    while w.written < spec.events {
        let i = usize::try_from(rng.below(slots.len() as u64)).unwrap_or(0);
        let roll = rng.below(100);
        let s = &mut slots[i];
        let name = if spec.churn {
            format!("{}-{}", s.name, s.generation)
        } else {
            s.name.clone()
        };
        let mut attrs: Vec<(&str, &str)> = vec![("image", s.image), ("name", &name)];
        attrs.extend(s.labels.iter().map(|(k, v)| (*k, v.as_str())));
        let id = s.id.clone();
        let with =
            |extra: &[(&'static str, &str)], attrs: &[(&str, &str)]| -> Vec<(String, String)> {
                attrs
                    .iter()
                    .chain(extra)
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            };
        let emit = |w: &mut Writer<'_, W>, action: &str, attrs: &[(String, String)]| {
            let a: Vec<(&str, &str)> = attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            w.emit("container", action, &id, &a)
        };
        match s.phase {
            Phase::Absent => {
                emit(&mut w, "create", &with(&[], &attrs))?;
                w.emit(
                    "network",
                    "connect",
                    "f3a9c2d4e5b6",
                    &[("container", &id), ("name", "bridge"), ("type", "bridge")],
                )?;
                if rng.chance(20) {
                    w.emit(
                        "volume",
                        "mount",
                        &format!("vol-{i}"),
                        &[
                            ("container", &id),
                            ("destination", "/data"),
                            ("driver", "local"),
                            ("propagation", ""),
                            ("read/write", "true"),
                        ],
                    )?;
                }
                s.phase = Phase::Created;
            }
            Phase::Created | Phase::Exited if spec.churn && s.phase == Phase::Exited => {
                emit(&mut w, "destroy", &with(&[], &attrs))?;
                s.phase = Phase::Absent;
                s.generation += 1;
                s.id = hex_id(&mut rng);
            }
            Phase::Created | Phase::Exited => {
                if s.phase == Phase::Exited && roll < 10 {
                    w.emit(
                        "network",
                        "disconnect",
                        "f3a9c2d4e5b6",
                        &[("container", &id), ("name", "bridge"), ("type", "bridge")],
                    )?;
                    emit(&mut w, "destroy", &with(&[], &attrs))?;
                    s.phase = Phase::Absent;
                    s.id = hex_id(&mut rng);
                } else {
                    emit(&mut w, "start", &with(&[], &attrs))?;
                    s.phase = Phase::Running;
                }
            }
            Phase::Paused => {
                emit(&mut w, "unpause", &with(&[], &attrs))?;
                s.phase = Phase::Running;
            }
            Phase::Running => {
                exec_n += 1;
                let exec_id = format!("{exec_n:064x}");
                if spec.churn || roll < 4 {
                    // Dies: a crash, a kill, or an OOM kill.
                    let code =
                        ["0", "1", "2", "137", "143"][usize::try_from(rng.below(5)).unwrap_or(0)];
                    if code == "137" && rng.chance(50) {
                        emit(&mut w, "oom", &with(&[], &attrs))?;
                    } else if code == "137" || code == "143" {
                        let signal = if code == "137" { "9" } else { "15" };
                        emit(&mut w, "kill", &with(&[("signal", signal)], &attrs))?;
                    }
                    emit(
                        &mut w,
                        "die",
                        &with(&[("exitCode", code), ("execDuration", "12")], &attrs),
                    )?;
                    s.phase = Phase::Exited;
                } else if roll < 6 {
                    emit(&mut w, "pause", &with(&[], &attrs))?;
                    s.phase = Phase::Paused;
                } else if let (Some(cmd), true) = (s.healthcheck, roll < 80) {
                    // A healthcheck probe, and now and then a change of health.
                    let create = format!("exec_create: {cmd}");
                    let start = format!("exec_start: {cmd}");
                    let code = if rng.chance(95) { "0" } else { "1" };
                    emit(&mut w, &create, &with(&[("execID", &exec_id)], &attrs))?;
                    emit(&mut w, &start, &with(&[("execID", &exec_id)], &attrs))?;
                    emit(
                        &mut w,
                        "exec_die",
                        &with(&[("execID", &exec_id), ("exitCode", code)], &attrs),
                    )?;
                    if rng.chance(3) {
                        let status = if code == "0" {
                            "health_status: healthy"
                        } else {
                            "health_status: unhealthy"
                        };
                        emit(&mut w, status, &with(&[], &attrs))?;
                    }
                } else if roll < 92 {
                    let code = if rng.chance(90) { "0" } else { "1" };
                    emit(
                        &mut w,
                        "exec_create: sh -c ls /tmp",
                        &with(&[("execID", &exec_id)], &attrs),
                    )?;
                    emit(
                        &mut w,
                        "exec_start: sh -c ls /tmp",
                        &with(&[("execID", &exec_id)], &attrs),
                    )?;
                    emit(
                        &mut w,
                        "exec_die",
                        &with(&[("execID", &exec_id), ("exitCode", code)], &attrs),
                    )?;
                } else if roll < 96 {
                    w.emit(
                        "image",
                        "pull",
                        s.image,
                        &[("name", s.image.split(':').next().unwrap_or(s.image))],
                    )?;
                } else {
                    emit(&mut w, "top", &with(&[], &attrs))?;
                }
            }
        }
    }
    w.out.flush()?;
    Ok(w.written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::event::Event;

    #[test]
    fn every_generated_line_decodes_and_the_output_is_deterministic() {
        for shape in [Shape::Engine20, Shape::Engine29] {
            let spec = Spec {
                events: 2000,
                containers: 20,
                shape,
                ..Spec::default()
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            generate(&spec, &mut a).expect("generate");
            generate(&spec, &mut b).expect("generate");
            assert_eq!(a, b);
            let lines: Vec<&[u8]> = a.split(|c| *c == b'\n').filter(|l| !l.is_empty()).collect();
            assert!(lines.len() >= 2000);
            for l in &lines {
                Event::decode(l).expect("decodes");
            }
            let legacy = lines
                .iter()
                .filter(|l| l.starts_with(b"{\"status\""))
                .count();
            assert_eq!(legacy > 0, shape == Shape::Engine20);
        }
    }

    #[test]
    fn a_chaotic_file_holds_the_same_events_with_their_keys_shuffled() {
        let plain = Spec {
            events: 500,
            containers: 20,
            ..Spec::default()
        };
        let chaotic = Spec {
            chaotic: true,
            ..plain.clone()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        generate(&plain, &mut a).expect("generate");
        generate(&chaotic, &mut b).expect("generate");
        let events = |text: &[u8]| -> Vec<Event> {
            text.split(|c| *c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| Event::decode(l).expect("decodes"))
                .collect()
        };
        let (a_events, b_events) = (events(&a), events(&b));
        assert_eq!(a_events.len(), b_events.len());
        for (x, y) in a_events.iter().zip(&b_events) {
            let sorted = |e: &Event| {
                let mut attrs: Vec<(String, String)> = e
                    .attributes()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                attrs.sort();
                (
                    e.type_name().to_owned(),
                    e.action().to_owned(),
                    e.actor_id().to_owned(),
                    e.time_nano,
                    attrs,
                )
            };
            assert_eq!(sorted(x), sorted(y));
        }
        let first = |text: &[u8]| {
            text.split(|c| *c == b'\n')
                .take(50)
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        };
        let in_engine_order = first(&b)
            .iter()
            .filter(|l| l.starts_with(b"{\"Type\":"))
            .count();
        assert!(
            in_engine_order < 25,
            "{in_engine_order} of 50 lines start as the engine writes them"
        );
    }
}
