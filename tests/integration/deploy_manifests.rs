//! Checks deploy/: Kubernetes manifests (real schema validators and structure), the Compose stack and scripts/local-stack.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;
use serde_json::{json, Value};

const EXPORTER: &str = "emnify-exporter";
const IMAGE: &str = "ghcr.io/example/emnify-exporter:0.1.0";
const TOKEN_SECRET: &str = "emnify-application-token";
const TOKEN_ENV: &str = "EMNIFY_EXPORTER_EMNIFY_APPLICATION_TOKEN_FILE";
const JOB: &str = "emnify-exporter";
const MONITORING: &str = "monitoring.coreos.com/v1";
const KUBERNETES_VALIDATE_INSTALL: &str = "python3 -m venv .venv && .venv/bin/pip install kubernetes-validate==1.37.0";
const CRD_MODELS_INSTALL: &str = "npm install --prefix .venv/npm @kubernetes-models/prometheus-operator@6.0.0";

/// The (apiVersion, kind) pairs the manifests may use.
const KNOWN_KINDS: &[(&str, &str)] = &[
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    (MONITORING, "ServiceMonitor"),
    (MONITORING, "PodMonitor"),
    (MONITORING, "PrometheusRule"),
];

/// Every manifest under deploy/kubernetes/ (each in the Kustomize directory that uses it, the
/// kustomization.yaml files aside: kustomize.rs renders those) and the kinds of its documents, in order.
const FILES: &[(&str, &[&str])] = &[
    ("podmonitor.yaml", &["PodMonitor"]),
    ("prometheusrule.yaml", &["PrometheusRule"]),
    ("secret.yaml", &["Secret"]),
    ("servicemonitor.yaml", &["ServiceMonitor"]),
    ("sidecar-classic.yaml", &["Deployment"]),
    ("sidecar-native.yaml", &["Deployment"]),
    ("standalone.yaml", &["PersistentVolumeClaim", "Deployment", "Service"]),
];

/// Fields of a container the exporter's entries may use (a typo is caught even without a schema tool).
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "restartPolicy",
    "args",
    "env",
    "ports",
    "startupProbe",
    "readinessProbe",
    "livenessProbe",
    "resources",
    "securityContext",
    "volumeMounts",
];

// Fields of the Prometheus Operator CRDs (monitoring.coreos.com/v1), from its published API: the CRD
// schema validator does not reject unknown fields, so typos are caught here.
const MONITOR_SPEC_FIELDS: &[&str] = &[
    "attachMetadata",
    "bodySizeLimit",
    "convertClassicHistogramsToNHCB",
    "fallbackScrapeProtocol",
    "jobLabel",
    "keepDroppedTargets",
    "labelLimit",
    "labelNameLengthLimit",
    "labelValueLengthLimit",
    "namespaceSelector",
    "nativeHistogramBucketLimit",
    "nativeHistogramMinBucketFactor",
    "podTargetLabels",
    "sampleLimit",
    "scrapeClass",
    "scrapeClassicHistograms",
    "scrapeNativeHistograms",
    "scrapeProtocols",
    "selector",
    "selectorMechanism",
    "targetLimit",
];
const SERVICE_MONITOR_ONLY_FIELDS: &[&str] = &["endpoints", "serviceDiscoveryRole", "targetLabels"];
const POD_MONITOR_ONLY_FIELDS: &[&str] = &["podMetricsEndpoints"];
const ENDPOINT_FIELDS: &[&str] = &[
    "authorization",
    "basicAuth",
    "bearerTokenFile",
    "bearerTokenSecret",
    "filterRunning",
    "followRedirects",
    "honorLabels",
    "honorTimestamps",
    "interval",
    "metricRelabelings",
    "noProxy",
    "params",
    "path",
    "port",
    "portNumber",
    "proxyConnectHeader",
    "proxyFromEnvironment",
    "proxyUrl",
    "relabelings",
    "scheme",
    "scrapeTimeout",
    "targetPort",
    "tlsConfig",
    "trackTimestampsStaleness",
];
const RELABEL_FIELDS: &[&str] =
    &["action", "modulus", "regex", "replacement", "separator", "sourceLabels", "targetLabel"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Every YAML document of `text` (empty ones skipped), as JSON values.
pub(crate) fn yaml_documents(text: &str, name: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml_ng::Value::deserialize(document)
            .unwrap_or_else(|e| panic!("{name}: document {i} is not valid YAML: {e}"));
        if value.is_null() {
            continue;
        }
        docs.push(serde_json::to_value(value).unwrap_or_else(|e| panic!("{name}: document {i}: {e}")));
    }
    docs
}

fn yaml_file(relative: &str) -> Value {
    let mut docs = yaml_documents(&read(relative), relative);
    assert_eq!(docs.len(), 1, "{relative}: expected one YAML document");
    docs.remove(0)
}

#[derive(Clone)]
struct Manifest {
    /// The file's name: unique across the directories.
    file: String,
    path: PathBuf,
    docs: Vec<Value>,
}

fn kubernetes_dir() -> PathBuf {
    repo().join("deploy/kubernetes")
}

/// The manifests under deploy/kubernetes/ and its Kustomize directories, sorted by file name.
fn manifest_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![kubernetes_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("deploy/kubernetes exists") {
            let path = entry.expect("readable directory").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if (name.ends_with(".yaml") || name.ends_with(".yml")) && name != "kustomization.yaml" {
                files.push(path);
            }
        }
    }
    files.sort_by_key(|path| path.file_name().map(|n| n.to_os_string()));
    files
}

fn manifests() -> Vec<Manifest> {
    manifest_files()
        .into_iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            Manifest { docs: yaml_documents(&text, &file), file, path }
        })
        .collect()
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

pub(crate) fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

// ------------------------------------------------------------------------------------------------
// Structural checks
// ------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(problem());
        }
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn array_at<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value.pointer(pointer).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// True when every label of a non-empty `selector` (a matchLabels map) is among `labels`.
fn selects(selector: Option<&Value>, labels: Option<&Value>) -> bool {
    let (Some(Value::Object(selector)), Some(Value::Object(labels))) = (selector, labels) else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn unknown_keys(value: &Value, allowed: &[&str]) -> Vec<String> {
    value
        .as_object()
        .map(|o| o.keys().filter(|k| !allowed.contains(&k.as_str())).cloned().collect())
        .unwrap_or_default()
}

/// A Kubernetes quantity such as `32Mi`, in bytes.
fn quantity(text: &str) -> Option<f64> {
    let units = [("Ki", 1024f64), ("Mi", 1024f64.powi(2)), ("Gi", 1024f64.powi(3)), ("k", 1e3), ("M", 1e6), ("G", 1e9)];
    for (suffix, factor) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse().ok()
}

fn find<'a>(manifests: &'a [Manifest], file: &str) -> Option<&'a Manifest> {
    manifests.iter().find(|m| m.file == file)
}

fn doc_of_kind<'a>(manifest: Option<&'a Manifest>, kind: &str) -> Option<&'a Value> {
    manifest?.docs.iter().find(|d| d["kind"] == kind)
}

/// The exporter container of a Deployment, and whether it is an init container.
fn exporter_container(deployment: &Value) -> Vec<(&Value, bool)> {
    let pod = &deployment["spec"]["template"]["spec"];
    let init = array_at(pod, "/initContainers").iter().map(|c| (c, true));
    let main = array_at(pod, "/containers").iter().map(|c| (c, false));
    init.chain(main).filter(|(c, _)| c["name"] == EXPORTER).collect()
}

/// Ports of a container: name → number.
fn container_ports(container: &Value) -> BTreeMap<String, i64> {
    array_at(container, "/ports")
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["containerPort"].as_i64()?)))
        .collect()
}

fn port_refers_to(port: &Value, ports: &BTreeMap<String, i64>) -> bool {
    match port {
        Value::String(name) => ports.contains_key(name),
        Value::Number(n) => n.as_i64().is_some_and(|n| ports.values().any(|p| *p == n)),
        _ => false,
    }
}

fn has_job_relabeling(endpoint: &Value) -> bool {
    array_at(endpoint, "/relabelings").iter().any(|r| {
        r["targetLabel"] == "job"
            && r["replacement"] == JOB
            && matches!(r.get("action").and_then(Value::as_str), None | Some("replace") | Some("Replace"))
            && r.get("sourceLabels").is_none()
    })
}

fn check_deployment(file: &str, doc: &Value, manifest: &Manifest, secret_keys: &BTreeSet<String>, p: &mut Problems) {
    let name = format!("{file}: Deployment {}", doc["metadata"]["name"]);
    let spec = &doc["spec"];
    let pod = &spec["template"]["spec"];
    p.check(spec["replicas"] == 1, || format!("{name}: replicas must be 1 (one poller per workspace)"));
    if file == "standalone.yaml" {
        p.check(str_at(spec, "/strategy/type") == Some("Recreate"), || {
            format!("{name}: strategy.type must be Recreate (two pollers must never overlap in a rollout)")
        });
    }
    p.check(selects(spec.pointer("/selector/matchLabels"), spec.pointer("/template/metadata/labels")), || {
        format!("{name}: spec.selector.matchLabels does not match the pod template's labels")
    });
    p.check(pod["terminationGracePeriodSeconds"].as_i64().is_some_and(|s| s >= 15), || {
        format!("{name}: terminationGracePeriodSeconds must be at least 15 (the exporter takes up to 10 s)")
    });

    let found = exporter_container(doc);
    p.check(found.len() == 1, || {
        format!("{name}: expected exactly one container named {EXPORTER}, found {}", found.len())
    });
    let Some(&(c, is_init)) = found.first() else { return };
    let cname = format!("{name}: container {EXPORTER}");
    if file == "sidecar-native.yaml" {
        p.check(is_init && c["restartPolicy"] == "Always", || {
            format!("{cname}: a native sidecar is an initContainers entry with restartPolicy: Always")
        });
    } else {
        p.check(!is_init && c.get("restartPolicy").is_none(), || {
            format!("{cname}: must be a regular container (in containers, without restartPolicy)")
        });
    }
    for key in unknown_keys(c, CONTAINER_FIELDS) {
        p.0.push(format!("{cname}: unexpected field {key}"));
    }
    p.check(c["image"] == IMAGE, || format!("{cname}: image must be the placeholder {IMAGE}, is {}", c["image"]));

    // Ports, listen address and probes.
    let ports = container_ports(c);
    p.check(ports.get("metrics") == Some(&9853), || format!("{cname}: needs the port `metrics` 9853, has {ports:?}"));
    let args: Vec<&str> = array_at(c, "/args").iter().filter_map(Value::as_str).collect();
    let listen = args.iter().find_map(|a| a.strip_prefix("--web.listen-address="));
    p.check(listen.is_none_or(|l| ports.values().any(|port| l.ends_with(&format!(":{port}")))), || {
        format!("{cname}: --web.listen-address={} is not a declared container port", listen.unwrap_or_default())
    });
    for (probe, path) in [("startupProbe", "/-/ready"), ("readinessProbe", "/-/ready"), ("livenessProbe", "/-/healthy")]
    {
        let get = &c[probe]["httpGet"];
        p.check(get["path"] == path, || format!("{cname}: {probe}.httpGet.path must be {path}, is {}", get["path"]));
        p.check(port_refers_to(&get["port"], &ports), || {
            format!("{cname}: {probe}.httpGet.port {} is not a declared container port", get["port"])
        });
    }

    // Security context.
    let sc = &c["securityContext"];
    let expected = [
        ("/runAsNonRoot", json!(true)),
        ("/runAsUser", json!(65532)),
        ("/readOnlyRootFilesystem", json!(true)),
        ("/allowPrivilegeEscalation", json!(false)),
        ("/capabilities/drop", json!(["ALL"])),
        ("/seccompProfile/type", json!("RuntimeDefault")),
    ];
    for (pointer, value) in expected {
        p.check(sc.pointer(pointer) == Some(&value), || format!("{cname}: securityContext{pointer} must be {value}"));
    }

    // Resources: requests and a memory limit, sized from the measured RSS (21-23 MiB when busy).
    let res = &c["resources"];
    for pointer in ["/requests/cpu", "/requests/memory", "/limits/memory"] {
        p.check(res.pointer(pointer).is_some(), || format!("{cname}: resources{pointer} is missing"));
    }
    let request = str_at(res, "/requests/memory").and_then(quantity);
    let limit = str_at(res, "/limits/memory").and_then(quantity);
    p.check(request.is_some_and(|r| r >= 24.0 * 1024.0 * 1024.0), || {
        format!("{cname}: requests.memory must cover the measured 23 MiB busy RSS")
    });
    p.check(matches!((request, limit), (Some(r), Some(l)) if l > r), || {
        format!("{cname}: limits.memory must be above requests.memory")
    });

    // Volumes and mounts.
    let volumes: BTreeMap<&str, &Value> =
        array_at(pod, "/volumes").iter().filter_map(|v| Some((v["name"].as_str()?, v))).collect();
    let mounts = array_at(c, "/volumeMounts");
    for mount in mounts {
        p.check(mount["name"].as_str().is_some_and(|n| volumes.contains_key(n)), || {
            format!("{cname}: volumeMount {} names no volume of the pod", mount["name"])
        });
    }
    let volume_of = |mount: &Value| mount["name"].as_str().and_then(|n| volumes.get(n).copied());

    // The token: a Secret volume mounted without subPath, and the env var pointing into it.
    let token_mounts: Vec<&Value> = mounts
        .iter()
        .filter(|m| volume_of(m).is_some_and(|v| v.pointer("/secret/secretName") == Some(&json!(TOKEN_SECRET))))
        .collect();
    p.check(token_mounts.len() == 1, || format!("{cname}: expected one mount of the Secret {TOKEN_SECRET}"));
    let env: BTreeMap<&str, &Value> =
        array_at(c, "/env").iter().filter_map(|e| Some((e["name"].as_str()?, &e["value"]))).collect();
    p.check(!env.contains_key("EMNIFY_APPLICATION_TOKEN"), || {
        format!("{cname}: the token must come from a file, not the EMNIFY_APPLICATION_TOKEN variable")
    });
    if let Some(mount) = token_mounts.first() {
        p.check(mount.get("subPath").is_none() && mount.get("subPathExpr").is_none(), || {
            format!("{cname}: the token mount must not use subPath (a rotated Secret would never arrive)")
        });
        p.check(mount["readOnly"] == true, || format!("{cname}: the token mount must be readOnly"));
        p.check(volume_of(mount).is_some_and(|v| v.pointer("/secret/items").is_none()), || {
            format!("{cname}: the token volume must not remap keys with items")
        });
        let dir = mount["mountPath"].as_str().unwrap_or_default();
        let file = env.get(TOKEN_ENV).and_then(|v| v.as_str()).unwrap_or_default();
        let key = file.strip_prefix(dir).and_then(|rest| rest.strip_prefix('/'));
        p.check(!dir.is_empty() && key.is_some_and(|k| secret_keys.contains(k)), || {
            format!(
                "{cname}: {TOKEN_ENV}={file} is not a key of the Secret {TOKEN_SECRET} ({secret_keys:?}) under {dir}"
            )
        });
    }

    // The state file: on a writable volume (emptyDir in a sidecar, a PersistentVolumeClaim standalone).
    let state = args.iter().find_map(|a| a.strip_prefix("--state.file="));
    p.check(state.is_some(), || format!("{cname}: --state.file=PATH is missing"));
    if let Some(state) = state {
        let mount = mounts
            .iter()
            .filter(|m| {
                m["mountPath"].as_str().is_some_and(|d| state.starts_with(&format!("{}/", d.trim_end_matches('/'))))
            })
            .max_by_key(|m| m["mountPath"].as_str().map(str::len));
        p.check(mount.is_some_and(|m| m["readOnly"] != true), || {
            format!("{cname}: --state.file={state} is not on a writable mounted volume")
        });
        let volume = mount.and_then(volume_of);
        if file == "standalone.yaml" {
            let claim = volume.and_then(|v| str_at(v, "/persistentVolumeClaim/claimName"));
            let claims: Vec<&str> = manifest
                .docs
                .iter()
                .filter(|d| d["kind"] == "PersistentVolumeClaim")
                .filter_map(|d| str_at(d, "/metadata/name"))
                .collect();
            p.check(claim.is_some_and(|c| claims.contains(&c)), || {
                format!("{cname}: the state volume must be a PersistentVolumeClaim of {file} ({claims:?})")
            });
        } else {
            p.check(volume.is_some_and(|v| v.get("emptyDir").is_some()), || {
                format!("{cname}: the state volume of a sidecar must be an emptyDir")
            });
        }
    }
}

fn check_monitor_fields(name: &str, spec: &Value, only: &[&str], endpoints_key: &str, p: &mut Problems) {
    let allowed: Vec<&str> = MONITOR_SPEC_FIELDS.iter().chain(only).copied().collect();
    for key in unknown_keys(spec, &allowed) {
        p.0.push(format!("{name}: unexpected field spec.{key}"));
    }
    let endpoints = array_at(spec, &format!("/{endpoints_key}"));
    p.check(!endpoints.is_empty(), || format!("{name}: spec.{endpoints_key} is empty"));
    for endpoint in endpoints {
        for key in unknown_keys(endpoint, ENDPOINT_FIELDS) {
            p.0.push(format!("{name}: unexpected field {endpoints_key}[].{key}"));
        }
        for relabeling in array_at(endpoint, "/relabelings") {
            for key in unknown_keys(relabeling, RELABEL_FIELDS) {
                p.0.push(format!("{name}: unexpected field relabelings[].{key}"));
            }
        }
        p.check(endpoint.get("path").is_none_or(|path| path == "/metrics"), || {
            format!("{name}: path must be /metrics")
        });
        p.check(has_job_relabeling(endpoint), || {
            format!("{name}: a relabeling must set job=\"{JOB}\" (the rules and dashboards select it)")
        });
    }
}

/// Every structural problem of the manifests; empty when all is well.
fn structural_problems(manifests: &[Manifest]) -> Vec<String> {
    let mut p = Problems::default();
    let names: Vec<&str> = manifests.iter().map(|m| m.file.as_str()).collect();
    let expected: Vec<&str> = FILES.iter().map(|(f, _)| *f).collect();
    p.check(names == expected, || format!("deploy/kubernetes holds {names:?}, expected {expected:?}"));

    for m in manifests {
        let kinds: Vec<&str> = m.docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        if let Some((_, want)) = FILES.iter().find(|(f, _)| *f == m.file) {
            p.check(kinds == *want, || format!("{}: holds {kinds:?}, expected {want:?}", m.file));
        }
        for doc in &m.docs {
            let pair = (doc["apiVersion"].as_str().unwrap_or_default(), doc["kind"].as_str().unwrap_or_default());
            p.check(KNOWN_KINDS.contains(&pair), || format!("{}: unknown apiVersion/kind {pair:?}", m.file));
            p.check(str_at(doc, "/metadata/name").is_some_and(|n| !n.is_empty()), || {
                format!("{}: a {} without metadata.name", m.file, pair.1)
            });
        }
    }

    let secret = doc_of_kind(find(manifests, "secret.yaml"), "Secret");
    p.check(secret.is_some_and(|s| s["metadata"]["name"] == TOKEN_SECRET), || {
        format!("secret.yaml: the Secret must be named {TOKEN_SECRET}")
    });
    let secret_keys: BTreeSet<String> = secret
        .into_iter()
        .flat_map(|s| ["stringData", "data"].map(|k| s.get(k)))
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().cloned())
        .collect();

    for m in manifests {
        for doc in m.docs.iter().filter(|d| d["kind"] == "Deployment") {
            check_deployment(&m.file, doc, m, &secret_keys, &mut p);
        }
    }

    let pod_labels = |file: &str| {
        doc_of_kind(find(manifests, file), "Deployment").and_then(|d| d.pointer("/spec/template/metadata/labels"))
    };
    let exporter_ports = |file: &str| {
        doc_of_kind(find(manifests, file), "Deployment")
            .and_then(|d| exporter_container(d).first().map(|(c, _)| container_ports(c)))
            .unwrap_or_default()
    };

    // Service → standalone pods; ServiceMonitor → Service.
    let service = doc_of_kind(find(manifests, "standalone.yaml"), "Service");
    let service_ports: BTreeMap<String, &Value> = service
        .map(|s| array_at(s, "/spec/ports"))
        .unwrap_or_default()
        .iter()
        .filter_map(|port| Some((port["name"].as_str()?.to_string(), port)))
        .collect();
    p.check(selects(service.and_then(|s| s.pointer("/spec/selector")), pod_labels("standalone.yaml")), || {
        "standalone.yaml: the Service's selector does not match the Deployment's pod labels".to_string()
    });
    let metrics_port = service_ports.get("metrics");
    p.check(metrics_port.is_some_and(|port| port["port"] == 9853), || {
        "standalone.yaml: the Service needs a port named metrics, 9853".to_string()
    });
    p.check(
        metrics_port.is_some_and(|port| port_refers_to(&port["targetPort"], &exporter_ports("standalone.yaml"))),
        || "standalone.yaml: the Service's targetPort is not a port of the exporter container".to_string(),
    );

    if let Some(sm) = doc_of_kind(find(manifests, "servicemonitor.yaml"), "ServiceMonitor") {
        let name = "servicemonitor.yaml";
        let spec = &sm["spec"];
        check_monitor_fields(name, spec, SERVICE_MONITOR_ONLY_FIELDS, "endpoints", &mut p);
        let service_labels = service.and_then(|s| s.pointer("/metadata/labels"));
        p.check(selects(spec.pointer("/selector/matchLabels"), service_labels), || {
            format!("{name}: the selector does not match the labels of the Service in standalone.yaml")
        });
        for endpoint in array_at(spec, "/endpoints") {
            p.check(endpoint["port"].as_str().is_some_and(|port| service_ports.contains_key(port)), || {
                format!("{name}: endpoint port {} is not a port name of the Service", endpoint["port"])
            });
        }
        for label in array_at(spec, "/targetLabels") {
            p.check(label.as_str().is_some_and(|l| service_labels.and_then(|s| s.get(l)).is_some()), || {
                format!("{name}: targetLabels {label} is not a label of the Service")
            });
        }
    }

    if let Some(pm) = doc_of_kind(find(manifests, "podmonitor.yaml"), "PodMonitor") {
        let name = "podmonitor.yaml";
        let spec = &pm["spec"];
        check_monitor_fields(name, spec, POD_MONITOR_ONLY_FIELDS, "podMetricsEndpoints", &mut p);
        let selector = spec.pointer("/selector/matchLabels");
        for sidecar in ["sidecar-native.yaml", "sidecar-classic.yaml"] {
            p.check(selects(selector, pod_labels(sidecar)), || {
                format!("{name}: the selector does not match the pod labels of {sidecar}")
            });
            let ports = exporter_ports(sidecar);
            for endpoint in array_at(spec, "/podMetricsEndpoints") {
                p.check(endpoint["port"].as_str().is_some_and(|port| ports.contains_key(port)), || {
                    format!("{name}: port {} is not a port name of the exporter in {sidecar}", endpoint["port"])
                });
            }
            for label in array_at(spec, "/podTargetLabels") {
                p.check(label.as_str().is_some_and(|l| pod_labels(sidecar).and_then(|s| s.get(l)).is_some()), || {
                    format!("{name}: podTargetLabels {label} is not a pod label of {sidecar}")
                });
            }
        }
        p.check(!selects(selector, pod_labels("standalone.yaml")), || {
            format!("{name}: must not select the standalone pods (the ServiceMonitor scrapes them already)")
        });
    }
    p.0
}

#[test]
fn kubernetes_manifests_are_structurally_right() {
    let problems = structural_problems(&manifests());
    assert!(problems.is_empty(), "deploy/kubernetes:\n  {}", problems.join("\n  "));

    for path in manifest_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# "), "{}: must start with a header comment saying when to use it", path.display());
    }
    let readme = read("deploy/kubernetes/README.md");
    for (file, _) in FILES {
        assert!(readme.contains(file), "deploy/kubernetes/README.md does not mention {file}");
    }
    for file in ["emnify-recording-rules.yml", "emnify-alert-rules.yml"] {
        let rules = read(&format!("deploy/prometheus/{file}"));
        assert!(rules.contains(&format!("job=\"{JOB}\"")), "{file} no longer selects job=\"{JOB}\"");
    }
}

/// Each mistake is reported by the structural checks (so they are not vacuous).
#[test]
fn structural_checks_catch_mistakes() {
    type Mutation = (&'static str, usize, &'static str, fn(&mut Value), &'static str);
    let mutations: &[Mutation] = &[
        ("standalone.yaml", 1, "/apiVersion", |v| *v = json!("apps/v1beta1"), "unknown apiVersion/kind"),
        ("servicemonitor.yaml", 0, "/kind", |v| *v = json!("ServiceMonitors"), "unknown apiVersion/kind"),
        (
            "sidecar-native.yaml",
            0,
            "/spec/template/spec/initContainers/0",
            |c| {
                c.as_object_mut().unwrap().remove("restartPolicy");
            },
            "native sidecar",
        ),
        ("standalone.yaml", 1, "/spec/replicas", |v| *v = json!(2), "replicas must be 1"),
        ("standalone.yaml", 1, "/spec/strategy/type", |v| *v = json!("RollingUpdate"), "Recreate"),
        (
            "standalone.yaml",
            1,
            "/spec/template/spec/containers/0/volumeMounts/0",
            |m| {
                m["subPath"] = json!("application-token");
            },
            "subPath",
        ),
        (
            "standalone.yaml",
            1,
            "/spec/template/spec/containers/0/readinessProbe/httpGet/port",
            |v| *v = json!("metric"),
            "readinessProbe.httpGet.port",
        ),
        (
            "standalone.yaml",
            1,
            "/spec/template/spec/containers/0/livenessProbe/httpGet/path",
            |v| *v = json!("/-/ready"),
            "livenessProbe.httpGet.path",
        ),
        (
            "standalone.yaml",
            1,
            "/spec/template/spec/containers/0/volumeMounts/1",
            |m| m["readOnly"] = json!(true),
            "writable",
        ),
        (
            "sidecar-classic.yaml",
            0,
            "/spec/template/spec/containers/1/securityContext/runAsUser",
            |v| *v = json!(0),
            "runAsUser",
        ),
        (
            "sidecar-classic.yaml",
            0,
            "/spec/template/spec/containers/1",
            |c| {
                c["imagePulPolicy"] = json!("Always");
            },
            "unexpected field imagePulPolicy",
        ),
        (
            "sidecar-native.yaml",
            0,
            "/spec/template/spec/initContainers/0/env/0/value",
            |v| *v = json!("/etc/token"),
            "EMNIFY_EXPORTER_EMNIFY_APPLICATION_TOKEN_FILE",
        ),
        (
            "sidecar-native.yaml",
            0,
            "/spec/template/spec/initContainers/0/resources/limits",
            |l| {
                l.as_object_mut().unwrap().remove("memory");
            },
            "limits/memory",
        ),
        (
            "standalone.yaml",
            2,
            "/spec/selector/app.kubernetes.io~1instance",
            |v| *v = json!("other"),
            "Service's selector",
        ),
        ("servicemonitor.yaml", 0, "/spec/endpoints/0/port", |v| *v = json!("http"), "not a port name of the Service"),
        (
            "servicemonitor.yaml",
            0,
            "/spec/endpoints/0",
            |e| {
                e.as_object_mut().unwrap().remove("relabelings");
            },
            "job=\"emnify-exporter\"",
        ),
        (
            "podmonitor.yaml",
            0,
            "/spec/selector/matchLabels",
            |v| *v = json!({"app": "nothing"}),
            "does not match the pod labels",
        ),
        (
            "podmonitor.yaml",
            0,
            "/spec",
            |s| s["podTargetLabel"] = json!(["workspace"]),
            "unexpected field spec.podTargetLabel",
        ),
        ("secret.yaml", 0, "/stringData", |d| *d = json!({"token": "x"}), "is not a key of the Secret"),
    ];
    let original = manifests();
    assert!(structural_problems(&original).is_empty());
    for (file, doc, pointer, mutate, expected) in mutations {
        let mut changed = original.clone();
        let manifest = changed.iter_mut().find(|m| m.file == *file).unwrap_or_else(|| panic!("no {file}"));
        let target = manifest.docs[*doc].pointer_mut(pointer).unwrap_or_else(|| panic!("{file}: no {pointer}"));
        mutate(target);
        let problems = structural_problems(&changed);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "changing {file} at {pointer} should be reported with {expected:?}; reported: {problems:#?}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Schema validators
// ------------------------------------------------------------------------------------------------

pub(crate) fn kubernetes_validate() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBERNETES_VALIDATE") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "KUBERNETES_VALIDATE={} does not exist: {KUBERNETES_VALIDATE_INSTALL}", path.display());
        return path;
    }
    let venv = repo().join(".venv/bin/kubernetes-validate");
    if venv.is_file() {
        return venv;
    }
    which("kubernetes-validate").unwrap_or_else(|| {
        panic!(
            "kubernetes-validate (Kubernetes JSON schemas, bundled for offline use) is not installed: install it with: \
             {KUBERNETES_VALIDATE_INSTALL} (scripts/test does this)"
        )
    })
}

/// kubernetes-validate --strict (unknown fields are errors) against Kubernetes 1.29, the first with
/// native sidecars, and the newest schemas it bundles; all but the native sidecar also against 1.25.
#[test]
fn kubernetes_manifests_pass_the_kubernetes_schemas() {
    let tool = kubernetes_validate();
    let all = manifests();
    let core_docs = |files: &[&Manifest]| -> usize {
        files.iter().flat_map(|m| &m.docs).filter(|d| d["apiVersion"] != MONITORING).count()
    };
    let everything: Vec<&Manifest> = all.iter().collect();
    let older: Vec<&Manifest> = all.iter().filter(|m| m.file != "sidecar-native.yaml").collect();
    for (version, files) in [(Some("1.25.0"), &older), (Some("1.29.0"), &everything), (None, &everything)] {
        let mut command = Command::new(&tool);
        command.arg("--strict");
        if let Some(version) = version {
            command.args(["-k", version]);
        }
        command.args(files.iter().map(|m| &m.path));
        let output = run(&mut command);
        let out = text(&output);
        let against = version.unwrap_or("the newest bundled schemas");
        assert!(output.status.success(), "kubernetes-validate against {against} failed:\n{out}");
        for line in out.lines() {
            assert!(!line.starts_with("ERROR") && !line.starts_with("FATAL"), "against {against}: {line}");
            if line.starts_with("WARN") {
                // Only the Prometheus Operator kinds have no bundled schema; the next test covers them.
                assert!(
                    ["ServiceMonitor", "PodMonitor", "PrometheusRule"]
                        .iter()
                        .any(|k| line.contains(&format!("kind {k}"))),
                    "against {against}: {line}"
                );
            }
        }
        let passed = out.lines().filter(|l| l.starts_with("INFO") && l.contains(" passed ")).count();
        assert_eq!(passed, core_docs(files), "against {against}, every core resource must pass:\n{out}");
    }

    // The validator really validates: native sidecars did not exist in Kubernetes 1.27.
    let output = run(Command::new(&tool)
        .args(["--strict", "-k", "1.27.0"])
        .arg(kubernetes_dir().join("sidecar-native/sidecar-native.yaml")));
    assert!(
        !output.status.success() && text(&output).contains("'restartPolicy' was unexpected"),
        "kubernetes-validate should refuse a native sidecar for Kubernetes 1.27:\n{}",
        text(&output)
    );
}

const CRD_VALIDATOR: &str = r#"
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
const models = { ServiceMonitor, PodMonitor, PrometheusRule };
let failed = 0;
for (const [file, doc] of JSON.parse(readFileSync(0, "utf8"))) {
  try {
    const Model = models[doc.kind];
    if (!Model) throw new Error(`no schema for kind ${doc.kind}`);
    new Model(doc).validate();
    console.log(`PASS ${file} ${doc.kind}/${doc.metadata.name}`);
  } catch (e) {
    failed++;
    console.log(`ERROR ${file} ${doc.kind}: ${e.message}`);
  }
}
process.exit(failed ? 1 : 0);
"#;

/// Runs the Prometheus Operator CRD schemas (npm @kubernetes-models/prometheus-operator) on `docs`.
pub(crate) fn validate_crds(docs: &[(String, Value)]) -> Output {
    let prefix = std::env::var_os("EMNIFY_DEPLOY_NPM_PREFIX").map(PathBuf::from).unwrap_or(repo().join(".venv/npm"));
    let node =
        which("node").unwrap_or_else(|| panic!("node is not installed: install it with: apt-get install nodejs"));
    let package = prefix.join("node_modules/@kubernetes-models/prometheus-operator/package.json");
    assert!(
        package.is_file(),
        "the Prometheus Operator CRD schemas are not installed in {}: install them with: {CRD_MODELS_INSTALL} \
         (scripts/test does this)",
        prefix.display()
    );
    let mut child = Command::new(node)
        .args(["--input-type=module", "-e", CRD_VALIDATOR])
        .current_dir(&prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let input = serde_json::to_vec(docs).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn prometheus_operator_resources_pass_the_crd_schemas() {
    let docs: Vec<(String, Value)> = manifests()
        .into_iter()
        .flat_map(|m| m.docs.into_iter().map(move |d| (m.file.clone(), d)))
        .filter(|(_, d)| d["apiVersion"] == MONITORING)
        .collect();
    assert_eq!(docs.len(), 3, "expected a ServiceMonitor, a PodMonitor and a PrometheusRule");
    let output = validate_crds(&docs);
    assert!(output.status.success(), "Prometheus Operator CRD schema validation failed:\n{}", text(&output));
    assert_eq!(text(&output).lines().filter(|l| l.starts_with("PASS")).count(), 3, "{}", text(&output));

    // The validator really validates: a malformed interval and an unknown relabel action are refused.
    let (file, mut bad) = docs.iter().find(|(_, d)| d["kind"] != "PrometheusRule").cloned().expect("a monitor");
    let endpoints = if bad["kind"] == "ServiceMonitor" { "endpoints" } else { "podMetricsEndpoints" };
    bad["spec"][endpoints][0]["interval"] = json!("30 seconds");
    bad["spec"][endpoints][0]["relabelings"][0]["action"] = json!("rename");
    let output = validate_crds(&[(file, bad)]);
    let out = text(&output);
    assert!(!output.status.success() && out.contains("interval") && out.contains("action"), "{out}");
}

// ------------------------------------------------------------------------------------------------
// Compose stack
// ------------------------------------------------------------------------------------------------

/// Normalises `.` and `..` without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A service's volumes in short syntax: (source, target, is a bind mount).
fn service_volumes(service: &Value) -> Vec<(String, String, bool)> {
    array_at(service, "/volumes")
        .iter()
        .map(|v| {
            let text = v.as_str().unwrap_or_else(|| panic!("compose.yaml: use the short volume syntax: {v}"));
            let parts: Vec<&str> = text.split(':').collect();
            assert!((2..=3).contains(&parts.len()), "compose.yaml: volume {text}");
            let bind = parts[0].starts_with('.') || parts[0].starts_with('/');
            (parts[0].to_string(), parts[1].to_string(), bind)
        })
        .collect()
}

#[test]
fn compose_stack_is_valid_and_consistent() {
    let compose_dir = repo().join("deploy/compose");
    let compose = yaml_file("deploy/compose/compose.yaml");
    let services = compose["services"].as_object().expect("compose.yaml: services");
    for name in [EXPORTER, "prometheus", "alertmanager", "grafana"] {
        assert!(services.contains_key(name), "compose.yaml: no service {name}");
    }
    // The image builds from the repository root: a checkout's build output must not go into the context.
    let ignored = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    for dir in ["target/", ".venv/", "dist/"] {
        assert!(ignored.lines().any(|l| l.trim() == dir), ".dockerignore lacks {dir}");
    }

    // Every bind-mounted host path exists in the repository; named volumes are declared.
    let declared: BTreeSet<&String> = compose["volumes"].as_object().map(|o| o.keys().collect()).unwrap_or_default();
    for (name, service) in services {
        for (source, target, bind) in service_volumes(service) {
            if bind {
                let host = normalise(&compose_dir.join(&source));
                assert!(host.starts_with(repo()), "compose.yaml: {name} mounts {source} from outside the repository");
                assert!(
                    host.exists(),
                    "compose.yaml: {name} mounts {source}, which does not exist ({})",
                    host.display()
                );
            } else {
                assert!(declared.contains(&source), "compose.yaml: {name} uses the undeclared volume {source}");
            }
            assert!(target.starts_with('/'), "compose.yaml: {name}: mount target {target} must be absolute");
        }
    }

    // The exporter is built from the repository's own Dockerfile: a placeholder or any other image to
    // pull (`image:` beside `build:` makes Compose try a pull first) would not be this checkout's code.
    let exporter = &services[EXPORTER];
    assert!(
        exporter.get("image").is_none(),
        "compose.yaml: the exporter must be built (`build:`), not pulled as image {}",
        exporter["image"]
    );
    let context = str_at(exporter, "/build/context").expect("compose.yaml: the exporter needs build.context");
    assert_eq!(normalise(&compose_dir.join(context)), repo(), "compose.yaml: build.context is the repository root");
    assert_eq!(str_at(exporter, "/build/dockerfile"), Some("Dockerfile"), "compose.yaml: the repository's Dockerfile");
    // The arguments below are an exec-form list for the image's ENTRYPOINT: the image has no shell.
    let dockerfile = read("Dockerfile");
    let final_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    for line in [r#"ENTRYPOINT ["/emnify-exporter"]"#, "EXPOSE 9853", "USER 65532:65532"] {
        assert!(final_stage.lines().any(|l| l.trim() == line), "Dockerfile's last stage: no `{line}`");
    }
    assert!(exporter.get("entrypoint").is_none(), "compose.yaml: keep the image's ENTRYPOINT");
    assert!(exporter.get("healthcheck").is_none(), "compose.yaml: the image has no shell to run a healthcheck command");
    let command: Vec<&str> = array_at(exporter, "/command").iter().filter_map(Value::as_str).collect();
    assert!(command.contains(&"--demo") && command.contains(&"--ingest.mode=both"), "{command:?}");
    let listen_port = command
        .iter()
        .find_map(|a| a.strip_prefix("--web.listen-address="))
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or("9853");

    // prometheus.yml: scrape and alerting targets are this stack's services; the rule file resolves
    // in the repository and inside the container.
    let prometheus = yaml_file("deploy/compose/prometheus.yml");
    let job = array_at(&prometheus, "/scrape_configs")
        .iter()
        .find(|j| j["job_name"] == JOB)
        .unwrap_or_else(|| panic!("prometheus.yml: no scrape job {JOB}"));
    assert_eq!(array_at(job, "/static_configs/0/targets"), [json!(format!("{EXPORTER}:{listen_port}"))]);
    let alertmanager_targets = array_at(&prometheus, "/alerting/alertmanagers/0/static_configs/0/targets");
    assert_eq!(alertmanager_targets, [json!("alertmanager:9093")]);
    let prometheus_mounts = service_volumes(&services["prometheus"]);
    let config_mount = prometheus_mounts
        .iter()
        .find(|(source, _, _)| source == "./prometheus.yml")
        .expect("compose.yaml: prometheus mounts ./prometheus.yml");
    let container_config_dir = Path::new(&config_mount.1).parent().unwrap().to_path_buf();
    let rule_files = array_at(&prometheus, "/rule_files");
    let shipped = ["deploy/prometheus/emnify-recording-rules.yml", "deploy/prometheus/emnify-alert-rules.yml"];
    assert_eq!(rule_files.len(), shipped.len(), "prometheus.yml: rule_files must load both rule files");
    for (rule_file, shipped) in rule_files.iter().zip(shipped) {
        let rule_file = rule_file.as_str().unwrap();
        let in_repo = normalise(&compose_dir.join(rule_file));
        assert_eq!(in_repo, repo().join(shipped), "prometheus.yml: {rule_file}");
        let in_container = normalise(&container_config_dir.join(rule_file));
        let mounted = prometheus_mounts.iter().any(|(source, target, _)| {
            Path::new(target) == in_container && normalise(&compose_dir.join(source)) == in_repo
        });
        assert!(mounted, "compose.yaml: prometheus must mount {} at {}", in_repo.display(), in_container.display());
    }

    // Grafana: the provider's dashboard path holds the repository's dashboards; the datasource reaches prometheus:9090.
    let grafana_mounts = service_volumes(&services["grafana"]);
    let mounted_at = |target: &str| {
        grafana_mounts.iter().find(|(_, t, _)| t == target).map(|(source, _, _)| normalise(&compose_dir.join(source)))
    };
    let provider = yaml_file("deploy/grafana/provisioning/dashboards/emnify.yml");
    let dashboards_path = str_at(&provider, "/providers/0/options/path").expect("provider path");
    assert_eq!(mounted_at(dashboards_path), Some(repo().join("dashboards")), "compose.yaml: grafana dashboards");
    for dir in ["datasources", "dashboards"] {
        assert_eq!(
            mounted_at(&format!("/etc/grafana/provisioning/{dir}")),
            Some(repo().join(format!("deploy/grafana/provisioning/{dir}"))),
            "compose.yaml: grafana provisioning/{dir}"
        );
    }
    let datasource = yaml_file("deploy/grafana/provisioning/datasources/emnify-prometheus.yml");
    assert_eq!(str_at(&datasource, "/datasources/0/url"), Some("http://prometheus:9090"));

    // docker compose config validates the file against the Compose schema (no Docker engine needed).
    let compose_v2 = which("docker").is_some_and(|docker| {
        Command::new(docker).args(["compose", "version"]).output().is_ok_and(|o| o.status.success())
    });
    let mut config = if compose_v2 {
        let mut c = Command::new("docker");
        c.arg("compose");
        c
    } else {
        Command::new(which("docker-compose").unwrap_or_else(|| {
            panic!("neither `docker compose` nor docker-compose is installed: install it with: apt-get install docker-compose")
        }))
    };
    let output = run(config.args(["-f", "compose.yaml", "config", "-q"]).current_dir(&compose_dir));
    assert!(output.status.success(), "docker compose config refused compose.yaml:\n{}", text(&output));

    // promtool, from the repository layout (rule_files relative to the config file) ...
    let promtool = which("promtool").unwrap_or_else(|| panic!("promtool is missing: apt-get install prometheus"));
    let scratch = tempfile::tempdir().unwrap();
    let output = run(Command::new(&promtool)
        .args(["check", "config"])
        .arg(compose_dir.join("prometheus.yml"))
        .current_dir(scratch.path()));
    assert!(output.status.success(), "promtool check config deploy/compose/prometheus.yml:\n{}", text(&output));
    assert!(text(&output).contains("rules found"), "{}", text(&output));
    // ... and from the container layout: every file mounted where compose.yaml puts it.
    for (source, target, bind) in &prometheus_mounts {
        if *bind {
            let dest = scratch.path().join(target.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(compose_dir.join(source), &dest).unwrap();
        }
    }
    let output = run(Command::new(&promtool)
        .args(["check", "config"])
        .arg(scratch.path().join(config_mount.1.trim_start_matches('/')))
        .current_dir(scratch.path()));
    assert!(output.status.success(), "promtool on the container layout:\n{}", text(&output));

    // amtool, from Debian's prometheus-alertmanager.
    let amtool = which("amtool").unwrap_or_else(|| {
        panic!("amtool is not installed: install it with: apt-get install prometheus-alertmanager (scripts/test does this)")
    });
    let output = run(Command::new(amtool).args(["check-config"]).arg(compose_dir.join("alertmanager.yml")));
    assert!(output.status.success(), "amtool check-config deploy/compose/alertmanager.yml:\n{}", text(&output));
    let alertmanager_mounts = service_volumes(&services["alertmanager"]);
    assert!(alertmanager_mounts
        .iter()
        .any(|(s, t, _)| s == "./alertmanager.yml" && t == "/etc/alertmanager/alertmanager.yml"));
}

// ------------------------------------------------------------------------------------------------
// systemd unit
// ------------------------------------------------------------------------------------------------

const UNIT: &str = "deploy/systemd/emnify-exporter.service";
const UNIT_BINARY: &str = "/usr/local/bin/emnify-exporter";
/// `systemd-analyze security --offline=yes` of the unit as measured with systemd 252 (Debian 12): 1.1,
/// "OK". What is left is what an exporter needs (the host's network, sockets, the host's root) and
/// `ProcSubset=pid`, which would hide /proc/stat from process_start_time_seconds. Dropping any other
/// hardening directive raises the figure above this.
const MAX_EXPOSURE: f64 = 1.1;

/// The unit's directives as (section, key, value), continuation lines joined and whitespace collapsed.
fn unit_directives(text: &str) -> Vec<(String, String, String)> {
    let mut directives = Vec::new();
    let mut section = String::new();
    let mut entry = String::new();
    for line in text.lines().map(str::trim) {
        if entry.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(start) = line.strip_suffix('\\') {
            entry.push_str(start);
            entry.push(' ');
            continue;
        }
        entry.push_str(line);
        let whole = std::mem::take(&mut entry);
        if let Some(name) = whole.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = whole.split_once('=').unwrap_or_else(|| panic!("{UNIT}: not key=value: {whole}"));
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        directives.push((section.clone(), key.trim().to_string(), value));
    }
    directives
}

/// The unit written into `dir` with ExecStart pointing at the binary under test, as `systemd-analyze`
/// refuses a unit whose program does not exist (and /usr/local/bin has none here).
fn unit_for_tests(text: &str, dir: &Path) -> PathBuf {
    let exec = format!("ExecStart={UNIT_BINARY} ");
    assert_eq!(text.matches(&exec).count(), 1, "{UNIT}: expected one `{exec}`");
    let path = dir.join("emnify-exporter.service");
    std::fs::write(&path, text.replace(&exec, &format!("ExecStart={} ", env!("CARGO_BIN_EXE_emnify-exporter"))))
        .unwrap();
    path
}

fn systemd_analyze() -> PathBuf {
    which("systemd-analyze")
        .unwrap_or_else(|| panic!("systemd-analyze is missing: apt-get install systemd (scripts/test does this)"))
}

/// What `systemd-analyze verify` objects to. Its exit status alone is not enough: an unknown key or a
/// value it cannot parse is only warned about ("ignoring") with exit status 0, so every line naming the
/// unit is a problem too. Lines about other units of the host are not the unit's fault.
fn verify_problems(unit: &Path) -> Vec<String> {
    let output = run(Command::new(systemd_analyze()).args(["verify", "--man=no"]).arg(unit));
    let name = unit.file_name().unwrap().to_string_lossy().into_owned();
    let mut problems: Vec<String> = text(&output).lines().filter(|l| l.contains(&name)).map(str::to_string).collect();
    if !output.status.success() {
        problems.push(format!("systemd-analyze verify exited with {}:\n{}", output.status, text(&output)));
    }
    problems
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let problems = verify_problems(&unit_for_tests(&read(UNIT), dir.path()));
    assert!(problems.is_empty(), "systemd-analyze verify {UNIT}:\n{}", problems.join("\n"));
}

/// The check above finds the mistakes systemd itself would only warn about and skip.
#[test]
fn systemd_unit_check_catches_mistakes() {
    let good = read(UNIT);
    let mistakes = [
        ("a misspelt key", good.replacen("ProtectSystem=strict", "ProtectSytem=strict", 1)),
        ("a value systemd cannot parse", good.replacen("ProtectSystem=strict", "ProtectSystem=stric", 1)),
        ("a misspelt section", good.replacen("[Service]", "[Servce]", 1)),
        ("a misspelt service type", good.replacen("Type=simple", "Type=simpel", 1)),
    ];
    for (mistake, text) in mistakes {
        assert_ne!(text, good, "{mistake}: the mutation must change the unit");
        let dir = tempfile::tempdir().unwrap();
        assert!(!verify_problems(&unit_for_tests(&text, dir.path())).is_empty(), "{mistake} went unnoticed");
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_tests(&good, dir.path());
    let text =
        std::fs::read_to_string(&unit).unwrap().replace(env!("CARGO_BIN_EXE_emnify-exporter"), "/nonexistent/bin/x");
    std::fs::write(&unit, text).unwrap();
    assert!(!verify_problems(&unit).is_empty(), "a missing program went unnoticed");
}

/// `systemd-analyze security`'s overall exposure (0 = fully sandboxed, 10 = not at all) of a unit file.
fn exposure(unit: &Path) -> (f64, String) {
    let output = run(Command::new(systemd_analyze()).args(["security", "--offline=yes", "--no-pager"]).arg(unit));
    let out = text(&output);
    assert!(output.status.success(), "systemd-analyze security:\n{out}");
    let score = out
        .lines()
        .find_map(|l| {
            l.split_once("Overall exposure level for ")?.1.split_once(": ")?.1.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{out}"));
    (score, out)
}

#[test]
fn systemd_unit_exposure_stays_low() {
    let dir = tempfile::tempdir().unwrap();
    let (score, out) = exposure(&unit_for_tests(&read(UNIT), dir.path()));
    println!("systemd-analyze security --offline=yes {UNIT}: exposure {score}");
    assert!(
        score <= MAX_EXPOSURE,
        "{UNIT}: exposure {score} > {MAX_EXPOSURE}: hardening was dropped or weakened\n{out}"
    );
    // The bound is tight enough to notice one directive less.
    let weaker = read(UNIT).replacen("ProtectHome=yes\n", "", 1);
    assert_ne!(weaker, read(UNIT));
    let (weaker_score, _) = exposure(&unit_for_tests(&weaker, dir.path()));
    assert!(weaker_score > MAX_EXPOSURE, "without ProtectHome the exposure is still {weaker_score}");
}

/// The hardening the issue asks for is there by name, and the command line works as systemd runs it:
/// the token read from the credentials directory, the state file written in the state directory.
#[test]
fn systemd_unit_is_hardened_and_its_command_line_runs() {
    let directives = unit_directives(&read(UNIT));
    let service = |key: &str| -> Vec<String> {
        directives.iter().filter(|(s, k, _)| s == "Service" && k == key).map(|(_, _, v)| v.clone()).collect()
    };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("Restart", "on-failure"),
        ("EnvironmentFile", "-/etc/default/emnify-exporter"),
    ] {
        assert_eq!(service(key), [value], "{UNIT}: [Service] {key}=");
    }
    assert_eq!(service("SystemCallFilter").first().map(String::as_str), Some("@system-service"), "{UNIT}");

    let [credential] = &service("LoadCredential")[..] else { panic!("{UNIT}: one LoadCredential=") };
    let (credential, source) = credential.split_once(':').expect("LoadCredential=NAME:PATH");
    assert_eq!(source, "/etc/emnify-exporter/application-token", "{UNIT}: the token's place");
    let [state_directory] = &service("StateDirectory")[..] else { panic!("{UNIT}: one StateDirectory=") };
    let [exec] = &service("ExecStart")[..] else { panic!("{UNIT}: one ExecStart=") };
    let mut argv = exec.split_whitespace();
    assert_eq!(argv.next(), Some(UNIT_BINARY));
    let args: Vec<&str> = argv.collect();
    let token_flag = format!("--emnify.application-token-file=${{CREDENTIALS_DIRECTORY}}/{credential}");
    assert!(args.contains(&token_flag.as_str()), "{UNIT}: ExecStart must pass {token_flag}: {args:?}");
    let state_file = args.iter().find_map(|a| a.strip_prefix("--state.file=")).expect("ExecStart: --state.file=");
    assert_eq!(
        Path::new(state_file).parent(),
        Some(Path::new("/var/lib").join(state_directory).as_path()),
        "{UNIT}: the state file must be in the StateDirectory, the only place the service may write"
    );

    // Run those arguments as systemd would, with its directories in a scratch directory, against the
    // simulator with a token of its own, so only a token read from the credential file logs in.
    let root = tempfile::tempdir().unwrap();
    let credentials = root.path().join("credentials");
    let var_lib = root.path().join("var/lib");
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::create_dir_all(var_lib.join(state_directory)).unwrap();
    std::fs::write(credentials.join(credential), "systemd-credential-token\n").unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("${CREDENTIALS_DIRECTORY}", &credentials.to_string_lossy())
                .replace("/var/lib/", &format!("{}/", var_lib.display()))
        })
        .collect();
    let sim = crate::common::Process::start(
        &["simulate", "--listen=127.0.0.1:0", "--events-per-second=0", "--token=systemd-credential-token"],
        &[],
    );
    let api_url = sim.simulator_base();
    let mut exporter_args: Vec<&str> = args.iter().map(String::as_str).collect();
    exporter_args.extend([
        "--emnify.api-url",
        &api_url,
        "--emnify.poll-interval=1s",
        "--web.listen-address=127.0.0.1:0",
    ]);
    let mut exporter = crate::common::Process::start(&exporter_args, &[]);
    let metrics = format!("{}/metrics", exporter.exporter_base());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !crate::common::blocking_get(&metrics).1.lines().any(|l| l == "emnify_up 1") {
        assert!(
            std::time::Instant::now() < deadline,
            "no successful poll with the unit's arguments:\n{}",
            exporter.drain_logs().join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let state = var_lib.join(state_file.trim_start_matches("/var/lib/"));
    assert!(state.is_file(), "no state file at {} (the unit's --state.file)", state.display());
    assert!(exporter.terminate(std::time::Duration::from_secs(15)).success(), "a clean exit after SIGTERM");
}

// ------------------------------------------------------------------------------------------------
// scripts/local-stack
// ------------------------------------------------------------------------------------------------

fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> =
        (0..N).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")).collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// The exporter demo, a real Prometheus with the rules and Alertmanager, started and checked by the script.
#[test]
fn local_stack_check_passes() {
    assert!(
        which("prometheus-alertmanager").or_else(|| which("alertmanager")).is_some(),
        "Alertmanager is not installed: install it with: apt-get install prometheus-alertmanager (scripts/test does this)"
    );
    let [exporter, prometheus, alertmanager] = free_ports::<3>();
    let output = run(Command::new("bash")
        .arg(repo().join("scripts/local-stack"))
        .arg("--check")
        .env("EMNIFY_EXPORTER_BIN", env!("CARGO_BIN_EXE_emnify-exporter"))
        .env("LOCAL_STACK_EXPORTER_PORT", exporter.to_string())
        .env("LOCAL_STACK_PROMETHEUS_PORT", prometheus.to_string())
        .env("LOCAL_STACK_ALERTMANAGER_PORT", alertmanager.to_string())
        .env("LOCAL_STACK_CHECK_TIMEOUT", "120")
        .stdin(Stdio::null()));
    let out = text(&output);
    println!("{out}");
    assert!(output.status.success(), "scripts/local-stack --check failed:\n{out}");
    assert!(out.lines().any(|l| l == "local stack OK"), "no `local stack OK` line:\n{out}");
}
