//! The Helm chart (helm/pricing), linted and rendered by real Helm: Helm v4's
//! Go SDK as shipped in the PyPI package helm-python-sdk, driven by
//! helm/tools/helm_chart.py (tests/run.sh installs the package). The script
//! prints each rendered object flattened, one leaf per line, so these tests
//! assert on exact fields; the server config files the chart renders are fed
//! to the servers' own config parsers, and the control file to the control
//! crate's parser.
//!
//! Without helm-python-sdk every test fails, naming the package: a run that
//! cannot check the chart is not a green run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use pricing_control::{CallerAccount, ControlConfig};
use pricing_detail::DetailConfig;
use pricing_list::ListConfig;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

fn chart() -> String {
    workspace().join("helm/pricing").display().to_string()
}

fn production() -> String {
    workspace().join("helm/examples/production.yaml").display().to_string()
}

/// Runs the helper; fails the test when helm-python-sdk is not installed.
fn helm(args: &[&str]) -> std::process::Output {
    let script = workspace().join("helm/tools/helm_chart.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert_ne!(
        output.status.code(),
        Some(2),
        "helm-python-sdk is not installed, so the chart cannot be checked (pip install helm-python-sdk; tests/run.sh does it): {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    output
}

/// Every rendered object: "Kind/name" -> leaf path -> JSON value.
#[derive(Debug)]
struct Rendered(BTreeMap<String, BTreeMap<String, String>>);

impl Rendered {
    fn has(&self, object: &str) -> bool {
        self.0.contains_key(object)
    }

    fn object(&self, object: &str) -> &BTreeMap<String, String> {
        self.0.get(object).unwrap_or_else(|| panic!("{object} is not rendered; objects: {:?}", self.0.keys()))
    }

    /// A leaf as raw JSON.
    fn json(&self, object: &str, path: &str) -> &str {
        self.object(object).get(path).unwrap_or_else(|| panic!("{object} has no {path}")).as_str()
    }

    /// A string leaf, unquoted.
    fn str(&self, object: &str, path: &str) -> String {
        json_string(self.json(object, path))
    }

    /// The leaves under `prefix` (with the prefix cut off).
    fn under(&self, object: &str, prefix: &str) -> BTreeMap<String, String> {
        self.object(object)
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|rest| (rest.to_owned(), v.clone())))
            .collect()
    }

    /// The string items of a list leaf (`...args[0]`, `...args[1]`, ...).
    fn list(&self, object: &str, path: &str) -> Vec<String> {
        (0..).map_while(|i| self.object(object).get(&format!("{path}[{i}]")).map(|v| json_string(v))).collect()
    }

    fn kinds(&self, kind: &str) -> Vec<String> {
        self.0.keys().filter(|k| k.starts_with(&format!("{kind}/"))).cloned().collect()
    }
}

/// Decodes a JSON string literal (the helper prints values with json.dumps).
fn json_string(json: &str) -> String {
    let inner =
        json.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or_else(|| panic!("not a JSON string: {json}"));
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16).expect("\\u escape");
                out.push(char::from_u32(code).expect("a BMP character"));
            }
            Some(other) => out.push(other),
            None => panic!("dangling escape in {json}"),
        }
    }
    out
}

/// Renders with values files and `--set-json` expressions; `Err(stderr)`
/// when the chart refuses the values.
fn try_render(files: &[&str], set_json: &[&str]) -> Result<Rendered, String> {
    let chart = chart();
    let mut args = vec!["render", chart.as_str()];
    args.extend_from_slice(files);
    for expression in set_json {
        args.push("--set-json");
        args.push(expression);
    }
    let output = helm(&args);
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let mut objects: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).expect("utf-8").lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(object), Some(path), Some(value)) = (fields.next(), fields.next(), fields.next()) else {
            panic!("malformed line from the helper: {line:?}");
        };
        objects.entry(object.to_owned()).or_default().insert(path.to_owned(), value.to_owned());
    }
    assert!(!objects.is_empty(), "the chart rendered nothing");
    Ok(Rendered(objects))
}

fn render(files: &[&str], set_json: &[&str]) -> Rendered {
    try_render(files, set_json).unwrap_or_else(|stderr| panic!("render failed: {stderr}"))
}

/// The config file a pod reads: the ConfigMap's file with its
/// `${secret:KEY}` placeholders filled from the chart's Secret, as the
/// render-config init container does.
fn pod_config(rendered: &Rendered, config_map: &str) -> String {
    let mut text = rendered.str(&format!("ConfigMap/{config_map}"), "data.config.toml");
    if rendered.has("Secret/pricing-secrets") {
        for (key, value) in rendered.under("Secret/pricing-secrets", "stringData.") {
            text = text.replace(&format!("${{secret:{key}}}"), &json_string(&value));
        }
    }
    assert!(!text.contains("${secret:"), "a placeholder has no Secret key:\n{text}");
    text
}

const SERVERS: [(&str, u16); 2] = [("pricing-list", 50051), ("pricing-detail", 50052)];
const CONTAINER: &str = "spec.template.spec.containers[0]";

#[test]
fn chart_lints_clean_with_default_and_production_values() {
    let chart = chart();
    let production = production();
    for args in [vec!["lint", chart.as_str()], vec!["lint", chart.as_str(), production.as_str()]] {
        let output = helm(&args);
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "helm lint {args:?} failed:\n{report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!report.contains("ERROR") && !report.contains("WARNING"), "helm lint {args:?}:\n{report}");
    }
}

#[test]
fn both_servers_have_grpc_probes_on_their_grpc_port_and_outlast_their_drain() {
    let r = render(&[], &[]);
    for (server, port) in SERVERS {
        let deployment = format!("Deployment/{server}");
        assert_eq!(r.json(&deployment, &format!("{CONTAINER}.ports[0].containerPort")), port.to_string());
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(
                r.json(&deployment, &format!("{CONTAINER}.{probe}.grpc.port")),
                port.to_string(),
                "{server} {probe}"
            );
        }
        // Readiness must drop at once while draining; liveness must not kill
        // a draining pod; the pod must live through its drain.
        assert_eq!(r.json(&deployment, &format!("{CONTAINER}.readinessProbe.failureThreshold")), "1");
        let config_map = format!("{server}-config");
        let text = pod_config(&r, &config_map);
        let (listen, grace_ms) = if server == "pricing-list" {
            let c = ListConfig::parse(&text).unwrap_or_else(|e| panic!("{config_map}: {e}\n{text}"));
            (c.server.listen, c.server.drain_grace_ms)
        } else {
            let c = DetailConfig::parse(&text).unwrap_or_else(|e| panic!("{config_map}: {e}\n{text}"));
            (c.server.listen, c.server.drain_grace_ms)
        };
        assert_eq!(listen.port(), port, "the config listens where the probes look");
        assert!(grace_ms > 0, "{server} drains");
        let grace_s: u64 = r.json(&deployment, "spec.template.spec.terminationGracePeriodSeconds").parse().unwrap();
        assert!(grace_s * 1000 > grace_ms, "{server}: terminationGracePeriodSeconds {grace_s} <= drain {grace_ms} ms");
        let period: u64 = r.json(&deployment, &format!("{CONTAINER}.livenessProbe.periodSeconds")).parse().unwrap();
        let failures: u64 =
            r.json(&deployment, &format!("{CONTAINER}.livenessProbe.failureThreshold")).parse().unwrap();
        assert!(period * failures * 1000 > grace_ms, "{server}: liveness would kill a draining pod");
        // Scraped by annotation on the metrics port.
        assert_eq!(r.str(&deployment, "spec.template.metadata.annotations.prometheus.io/scrape"), "true");
    }
}

#[test]
fn the_control_configmap_is_mounted_as_a_directory_and_a_switch_flip_restarts_nothing() {
    let r = render(&[], &[]);
    let control = r.str("ConfigMap/pricing-control", "data.control.toml");
    let parsed = ControlConfig::parse(&control).unwrap_or_else(|e| panic!("the control file: {e}\n{control}"));
    assert_eq!(parsed.limits.max_concurrent, 4096, "values control.config: {parsed:?}");
    assert!(parsed.callers.is_empty() && !parsed.detail.redis_bypass, "{parsed:?}");
    for (server, _) in SERVERS {
        let deployment = format!("Deployment/{server}");
        let volumes = r.under(&deployment, "spec.template.spec.volumes[");
        let control_volume = volumes
            .iter()
            .find(|(k, v)| k.ends_with("].name") && json_string(v) == "control")
            .map(|(k, _)| k.trim_end_matches("].name").to_owned())
            .unwrap_or_else(|| panic!("{server} has no control volume"));
        assert_eq!(
            r.str(&deployment, &format!("spec.template.spec.volumes[{control_volume}].configMap.name")),
            "pricing-control"
        );
        let mounts = r.under(&deployment, &format!("{CONTAINER}.volumeMounts["));
        let mount = mounts
            .iter()
            .find(|(k, v)| k.ends_with("].name") && json_string(v) == "control")
            .map(|(k, _)| k.trim_end_matches("].name").to_owned())
            .unwrap_or_else(|| panic!("{server} does not mount the control volume"));
        assert_eq!(r.str(&deployment, &format!("{CONTAINER}.volumeMounts[{mount}].mountPath")), "/etc/pricing/control");
        assert!(
            !mounts.keys().any(|k| k.starts_with(&format!("{mount}].subPath"))),
            "{server}: a subPath mount never sees ConfigMap updates"
        );
        let args = r.list(&deployment, &format!("{CONTAINER}.args"));
        assert_eq!(args, ["--config", "/run/pricing/config.toml", "--log-format", "json"]);
        // The server's config names the file inside the mounted directory.
        let text = pod_config(&r, &format!("{server}-config"));
        let control_file = if server == "pricing-list" {
            ListConfig::parse(&text).expect("list config").server.control_file
        } else {
            DetailConfig::parse(&text).expect("detail config").server.control_file
        };
        assert_eq!(control_file.as_deref(), Some(std::path::Path::new("/etc/pricing/control/control.toml")));
    }

    // A new control file leaves every pod template as it was (no rollout);
    // a new server config rolls the list pods.
    let flipped = render(&[], &[r#"control.config="[detail]\nredis_bypass = true\n""#]);
    let flipped_control = ControlConfig::parse(&flipped.str("ConfigMap/pricing-control", "data.control.toml"))
        .expect("the flipped control file parses");
    assert!(flipped_control.detail.redis_bypass);
    for (server, _) in SERVERS {
        let deployment = format!("Deployment/{server}");
        assert_eq!(r.under(&deployment, "spec.template."), flipped.under(&deployment, "spec.template."), "{server}");
    }
    let reconfigured = render(&[], &[r#"list.server={"log":"debug"}"#]);
    let checksum = "spec.template.metadata.annotations.checksum/config";
    assert_ne!(r.json("Deployment/pricing-list", checksum), reconfigured.json("Deployment/pricing-list", checksum));
    assert_eq!(r.json("Deployment/pricing-detail", checksum), reconfigured.json("Deployment/pricing-detail", checksum));
}

#[test]
fn pdbs_autoscalers_and_zone_spread_cover_both_servers() {
    let r = render(&[], &[]);
    for (server, _) in SERVERS {
        let pdb = format!("PodDisruptionBudget/{server}");
        assert_eq!(r.json(&pdb, "spec.maxUnavailable"), "1");
        let component = server.trim_start_matches("pricing-");
        assert_eq!(r.str(&pdb, "spec.selector.matchLabels.app.kubernetes.io/component"), component);
        assert_eq!(r.str(&format!("HorizontalPodAutoscaler/{server}"), "spec.scaleTargetRef.name"), server);
        assert_eq!(
            r.str(&format!("Deployment/{server}"), "spec.template.spec.topologySpreadConstraints[0].topologyKey"),
            "topology.kubernetes.io/zone"
        );
    }
    // Each server pod learns its zone from its topology label (copied from
    // its node onto the pod by Kubernetes), or from a fixed value.
    for (server, _) in SERVERS {
        let deployment = format!("Deployment/{server}");
        assert_eq!(r.str(&deployment, &format!("{CONTAINER}.env[0].name")), "PRICING_ZONE");
        assert_eq!(
            r.str(&deployment, &format!("{CONTAINER}.env[0].valueFrom.fieldRef.fieldPath")),
            "metadata.labels['topology.kubernetes.io/zone']"
        );
    }
    let fixed = render(&[], &[r#"zone={"value":"zone-1"}"#]);
    assert_eq!(fixed.str("Deployment/pricing-detail", &format!("{CONTAINER}.env[0].value")), "zone-1");
    let off = render(&[], &[r#"list.pdb={"enabled":false}"#]);
    assert!(!off.has("PodDisruptionBudget/pricing-list"));
    assert!(off.has("PodDisruptionBudget/pricing-detail"));
}

#[test]
fn production_values_render_the_projector_loop_cronjobs_monitoring_and_parseable_configs() {
    let production = production();
    let r = render(&[&production], &[]);
    let loop_args = r.list("Deployment/pricing-projector-incremental", &format!("{CONTAINER}.args"));
    assert_eq!(loop_args, ["--config", "/run/pricing/config.toml", "--log-format", "json", "incremental"]);
    assert_eq!(r.str("Deployment/pricing-projector-incremental", "spec.strategy.type"), "Recreate");
    let cronjobs = r.kinds("CronJob");
    assert_eq!(
        cronjobs,
        ["CronJob/pricing-projector-full", "CronJob/pricing-projector-purge", "CronJob/pricing-projector-reconcile"]
    );
    for task in ["full", "reconcile", "purge"] {
        let cronjob = format!("CronJob/pricing-projector-{task}");
        let args = r.list(&cronjob, "spec.jobTemplate.spec.template.spec.containers[0].args");
        assert_eq!(args, ["--config", "/run/pricing/config.toml", "--log-format", "json", task], "{cronjob}");
        assert_eq!(r.str(&cronjob, "spec.concurrencyPolicy"), "Forbid");
        assert_eq!(r.str(&cronjob, "spec.jobTemplate.spec.template.spec.restartPolicy"), "Never");
    }
    assert_eq!(r.json("CronJob/pricing-projector-full", "spec.suspend"), "true", "full sync runs by hand");

    // The configs the pods read parse with the binaries' own parsers (the
    // projector's parser is not a dependency of this crate: its keys are
    // checked by helm/README.md's manual step).
    let list = ListConfig::parse(&pod_config(&r, "pricing-list-config")).expect("list config");
    assert_eq!(list.read.tiers, [pricing_store::TierId::Redis, pricing_store::TierId::Hbase]);
    assert!(list.source.database_url.as_deref().is_some_and(|u| u.starts_with("mysql://")));
    let detail = DetailConfig::parse(&pod_config(&r, "pricing-detail-config")).expect("detail config");
    assert!(!detail.checkout.quote_secret.is_empty(), "every detail pod shares the quote secret");
    let projector = pod_config(&r, "pricing-projector-config");
    assert!(projector.contains("[telemetry]") && projector.contains("database_url = \"mysql://"), "{projector}");
    // The projector follows the servers' control file ([projector]: write modes, pause).
    assert!(projector.contains("[control]\nfile = \"/etc/pricing/control/control.toml\""), "{projector}");
    let mounts = r.under("Deployment/pricing-projector-incremental", &format!("{CONTAINER}.volumeMounts["));
    assert!(mounts.values().any(|v| v == "\"/etc/pricing/control\""), "{mounts:?}");

    // Credentials sit in the Secret, never in a ConfigMap.
    for config_map in r.kinds("ConfigMap") {
        for (_, value) in r.under(&config_map, "data.") {
            assert!(!value.contains("CHANGE-ME"), "{config_map} holds a credential");
        }
    }
    // The control file parses with the control crate's own parser, and the
    // hash it holds is the hash of the token the Secret gives the caller.
    let control = r.str("ConfigMap/pricing-control", "data.control.toml");
    let parsed = ControlConfig::parse(&control).unwrap_or_else(|e| panic!("the control file: {e}\n{control}"));
    let account = parsed.callers.get("list-web").unwrap_or_else(|| panic!("no list-web caller: {parsed:?}"));
    assert!(account.token.is_none() && account.token_sha256.is_some(), "only the hash sits in the ConfigMap");
    let token = r.str("Secret/pricing-callers", "stringData.list-web");
    assert_eq!(token, "CHANGE-ME-list-web-token");
    assert_eq!(account.token_digest(), CallerAccount::with_token(&token, 1, None, 1).token_digest());
    assert!(r.has("ServiceMonitor/pricing") && r.has("PrometheusRule/pricing"));
    // The pods' track (stable, canary) reaches every Prometheus series as `track`.
    let relabel = "spec.endpoints[0].relabelings[0]";
    assert_eq!(
        r.list("ServiceMonitor/pricing", &format!("{relabel}.sourceLabels")),
        ["__meta_kubernetes_pod_label_pricing_io_track"]
    );
    assert_eq!(r.str("ServiceMonitor/pricing", &format!("{relabel}.targetLabel")), "track");
    assert!(r.str("PrometheusRule/pricing", "spec.groups[0].rules[0].alert").starts_with("Pricing"));
}

#[test]
fn the_canary_deployment_exists_only_when_enabled() {
    let stable = render(&[], &[]);
    assert!(!stable.has("Deployment/pricing-list-canary"));
    assert!(!stable.has("Service/pricing-list-canary"));

    let r = render(&[], &[r#"canary={"enabled":true,"replicas":2,"overrides":{"image":{"tag":"0.2.0-rc1"}}}"#]);
    let canary = "Deployment/pricing-list-canary";
    assert_eq!(r.json(canary, "spec.replicas"), "2");
    assert_eq!(r.str(canary, &format!("{CONTAINER}.image")), "pricing-list:0.2.0-rc1");
    assert_eq!(r.str("Deployment/pricing-list", &format!("{CONTAINER}.image")), "pricing-list:0.1.0");
    assert_eq!(r.str(canary, "spec.selector.matchLabels.pricing.io/track"), "canary");
    // The pods carry the track the ServiceMonitor turns into the `track` label.
    assert_eq!(r.str(canary, "spec.template.metadata.labels.pricing.io/track"), "canary");
    assert_eq!(r.str("Deployment/pricing-list", "spec.template.metadata.labels.pricing.io/track"), "stable");
    assert_eq!(r.str("Deployment/pricing-list", "spec.selector.matchLabels.pricing.io/track"), "stable");
    assert_eq!(r.json(canary, &format!("{CONTAINER}.readinessProbe.grpc.port")), "50051");
    // It reads the same control file, and is reached through the list
    // Service (no track in its selector) and through its own.
    assert_eq!(r.str("Service/pricing-list-canary", "spec.selector.pricing.io/track"), "canary");
    assert!(!r.object("Service/pricing-list").contains_key("spec.selector.pricing.io/track"));
    assert!(!r.has("HorizontalPodAutoscaler/pricing-list-canary"));
    ListConfig::parse(&pod_config(&r, "pricing-list-canary-config")).expect("canary config");

    let apart = render(&[], &[r#"canary={"enabled":true,"inStableService":false}"#]);
    assert_eq!(apart.str("Service/pricing-list", "spec.selector.pricing.io/track"), "stable");
}

#[test]
fn values_that_would_break_a_pod_are_refused_at_render_time() {
    for (set, expected) in [
        (r#"list.terminationGracePeriodSeconds=5"#, "terminationGracePeriodSeconds"),
        (r#"detail.probes={"liveness":{"periodSeconds":1,"failureThreshold":1,"timeoutSeconds":1}}"#, "liveness"),
        (r#"control.config="[callers.x]\nrate_per_second = 1\n""#, "[callers]"),
        (r#"list.config="[server]\nlog = \"debug\"\n""#, "[server]"),
        (r#"control.callers={"web":{"token":"short","ratePerSecond":1,"maxConcurrent":1}}"#, "at least 16"),
        (r#"control.callers={"web":{"ratePerSecond":1,"maxConcurrent":1}}"#, "exactly one of"),
        (r#"secrets.values={"database-url":"mysql://u:p\"q@h/db"}"#, "TOML string"),
    ] {
        match try_render(&[], &[set]) {
            Ok(_) => panic!("accepted: {set}"),
            Err(stderr) => assert!(stderr.contains(expected), "{set}: expected {expected:?} in\n{stderr}"),
        }
    }
}
