#!/usr/bin/python3
"""Structural checks of exoplex's deployment manifests (tests/e2e/ops_manifests.sh).

Debian's python3-yaml loads the YAML; Debian's python3-kubernetes gives the
Kubernetes API's own object models, used as an offline schema (unknown
fields, types, required fields). On top of the validators, this checks what
exoplex needs: probes on /healthz and /readyz, bus URLs that pair a
listener with a dialer through a Service, the shared bus directory, units
that restart and are hardened, and alert rules and dashboards that only use
metrics the code exports.

usage: ops_manifests.py ROOT [BIN]   (BIN: built programs, for the library
check of the Dockerfile's runtime stage). Prints each problem; exit 1 if any.
"""
import glob
import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
BIN = sys.argv[2] if len(sys.argv) > 2 else None
ERRORS = []
COMPONENTS = ("ingress", "transcoder", "egress")
ADMIN_PORT = {"ingress": 9100, "transcoder": 9101, "egress": 9102}


def err(where, msg):
    ERRORS.append(f"{os.path.relpath(where, ROOT) if os.path.isabs(where) else where}: {msg}")


def path(*p):
    return os.path.join(ROOT, *p)


def load_yaml_all(f):
    with open(f) as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


# ---------------------------------------------------------------- Dockerfile

def dockerfile_stages(f):
    """{stage: [lines]} of a Dockerfile, continuation lines joined."""
    stages, cur = {}, None
    text = open(f).read().replace("\\\n", " ")
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", s, re.I)
        if m:
            cur = m.group(2) or m.group(1)
            stages[cur] = [s]
            continue
        if cur:
            stages[cur].append(s)
    return stages


def apt_packages(lines):
    pk = []
    for s in lines:
        for m in re.finditer(r"apt-get install\s+(.*?)(?:&&|$)", s):
            pk += [w for w in m.group(1).split() if not w.startswith("-")]
    return pk


# Loaded with dlopen, so ldd cannot see it: lws's libev support, which
# every component's event loop runs on (common/evloop.h).
DLOPENED = ("libwebsockets-evlib-ev",)


def check_dockerfile():
    f = path("deploy", "Dockerfile")
    st = dockerfile_stages(f)
    for need in ("build", "runtime") + COMPONENTS + ("fakeplex",):
        if need not in st:
            err(f, f"no stage '{need}'")
    if "runtime" not in st:
        return st
    rt = st["runtime"]
    if not rt[0].split()[1].startswith("debian:bookworm-slim"):
        err(f, "the runtime stage is not debian:bookworm-slim")
    if not st.get("build", [""])[0].split()[1].startswith("debian:bookworm"):
        err(f, "the build stage is not Debian bookworm")
    pk = apt_packages(rt)
    for p in DLOPENED:
        if p not in pk:
            err(f, f"the runtime stage does not install {p} (lws loads it "
                   "at run time: common/evloop.h)")
    for p in pk:
        if p.endswith("-dev") or p in ("build-essential", "cmake", "gcc", "pkg-config"):
            err(f, f"build package '{p}' in the runtime stage")
    if not any(re.match(r"USER\s+(?!root\b|0\b)\S+", s) for s in rt):
        err(f, "the runtime stage does not switch to a non-root USER")
    for c in COMPONENTS + ("fakeplex",):
        lines = st.get(c, [])
        if lines and not lines[0].split()[1] == "runtime":
            err(f, f"stage {c} is not built FROM runtime")
        if not any(f"/build/bin/exoplex-{c}" in s for s in lines if s.startswith("COPY")):
            err(f, f"stage {c} does not copy exoplex-{c}")
        if not any(s.startswith("ENTRYPOINT") and f"exoplex-{c}" in s for s in lines):
            err(f, f"stage {c} has no ENTRYPOINT running exoplex-{c}")
    targets = " ".join(st.get("build", []))
    for c in COMPONENTS + ("fakeplex", "tap"):
        if f"exoplex-{c}" not in targets:
            err(f, f"the build stage does not build exoplex-{c}")
    # Every package named exists in this Debian's archive (the same
    # release as the images), read from the local apt cache.
    for stage in ("build", "runtime"):
        pk_stage = apt_packages(st.get(stage, []))
        r = subprocess.run(["apt-cache", "policy"] + pk_stage, capture_output=True, text=True)
        found = set(re.findall(r"^(\S+):\n\s+Installed:.*\n\s+Candidate: (?!\(none\))", r.stdout, re.M))
        for p in pk_stage:
            if p not in found:
                err(f, f"stage {stage}: no Debian package '{p}'")
    if BIN and os.environ.get("OPS_ONLY") in (None, "docker"):
        check_runtime_libraries(f, pk)
    return st


def check_runtime_libraries(f, runtime_pk):
    """The shared libraries the built programs load all come from the
    runtime stage's packages or their dependencies."""
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                        "--no-suggests", "--no-conflicts", "--no-breaks",
                        "--no-replaces", "--no-enhances"] + runtime_pk,
                       capture_output=True, text=True)
    closure = set(runtime_pk)
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(?:\|?(?:Pre)?Depends:\s*)?<?([a-z0-9][a-z0-9.+-]+)>?(?::\w+)?$", line)
        if m:
            closure.add(m.group(1))
    closure |= {"libc6", "libgcc-s1"}  # in every Debian image
    for prog in COMPONENTS + ("fakeplex", "tap"):
        exe = os.path.join(BIN, f"exoplex-{prog}")
        if not os.path.exists(exe):
            err(f, f"{exe} not built: cannot check its libraries")
            continue
        out = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
        libs = sorted({os.path.realpath(m.group(1)) for m in re.finditer(r"=>\s+(/\S+)", out)})
        # Debian 12 is merged-/usr: dpkg may know a library as /lib/...
        alt = {lib: re.sub(r"^/usr/lib/", "/lib/", lib) for lib in libs}
        d = subprocess.run(["dpkg", "-S"] + libs + list(set(alt.values()) - set(libs)),
                           capture_output=True, text=True).stdout
        owner = {}
        for line in d.splitlines():
            pkgs, _, p = line.partition(": ")
            owner[p] = pkgs.split(",")[0].split(":")[0].strip()
        for lib in libs:
            pkg = owner.get(lib) or owner.get(alt[lib])
            if pkg is None:
                err(f, f"exoplex-{prog} loads {lib}, which no Debian package owns")
            elif pkg not in closure:
                err(f, f"exoplex-{prog} needs {pkg} ({os.path.basename(lib)}), "
                       "which the runtime stage does not install")


# ------------------------------------------------------------------- compose

def check_compose(stages):
    f = path("compose.yaml")
    d = load_yaml_all(f)[0]
    if "version" in d:
        err(f, "a 'version' key (obsolete in the Compose spec)")
    svcs = d.get("services", {})
    vols = d.get("volumes", {}) or {}
    for c in COMPONENTS:
        s = svcs.get(c)
        if not s:
            err(f, f"no service {c}")
            continue
        b = s.get("build", {})
        if b.get("dockerfile") != "deploy/Dockerfile" or b.get("target") != c:
            err(f, f"{c}: not built from deploy/Dockerfile target {c}")
        if stages and b.get("target") not in stages:
            err(f, f"{c}: target {b.get('target')} is not a Dockerfile stage")
        if s.get("restart") != "unless-stopped":
            err(f, f"{c}: restart is not unless-stopped")
        if not s.get("env_file"):
            err(f, f"{c}: no env_file")
        env = s.get("environment", {})
        bus = env.get("EXOPLEX_BUS_DIR")
        if not any(str(v).split(":")[0] == "bus" and str(v).split(":")[1] == bus
                   for v in s.get("volumes", [])):
            err(f, f"{c}: the bus volume is not mounted at EXOPLEX_BUS_DIR ({bus})")
        hc = " ".join(s.get("healthcheck", {}).get("test", []))
        port = str(env.get("EXOPLEX_ADMIN", "")).rsplit(":", 1)[-1]
        if "/healthz" not in hc or f":{port}/" not in hc:
            err(f, f"{c}: healthcheck does not GET /healthz on the admin port {port}")
        if s.get("profiles"):
            err(f, f"{c}: in a profile (the trio must start by default)")
    if "bus" not in vols:
        err(f, "no top-level 'bus' volume")
    fp = svcs.get("fakeplex", {})
    if fp.get("profiles") != ["demo"]:
        err(f, "the PersonaPlex stand-in is not in the demo profile")


# ---------------------------------------------------------------- kubernetes

K8S_MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
}


def model_check(kc, obj, typ, where, out):
    """Unknown fields and wrong types against the client's models."""
    if typ == "object":
        return
    if typ == "str" or typ == "datetime":
        if not isinstance(obj, str):
            out.append(f"{where}: expected a string, got {obj!r}")
        return
    if typ == "int":
        if not isinstance(obj, int) or isinstance(obj, bool):
            out.append(f"{where}: expected an integer, got {obj!r}")
        return
    if typ == "bool":
        if not isinstance(obj, bool):
            out.append(f"{where}: expected true/false, got {obj!r}")
        return
    if typ == "float":
        if not isinstance(obj, (int, float)) or isinstance(obj, bool):
            out.append(f"{where}: expected a number, got {obj!r}")
        return
    m = re.match(r"list\[(.*)\]$", typ)
    if m:
        if not isinstance(obj, list):
            out.append(f"{where}: expected a list")
            return
        for i, v in enumerate(obj):
            model_check(kc, v, m.group(1), f"{where}[{i}]", out)
        return
    m = re.match(r"dict\(([^,]*), (.*)\)$", typ)
    if m:
        if not isinstance(obj, dict):
            out.append(f"{where}: expected a map")
            return
        for k, v in obj.items():
            model_check(kc, v, m.group(2), f"{where}.{k}", out)
        return
    cls = getattr(kc, typ, None)
    if cls is None:
        return
    if not isinstance(obj, dict):
        out.append(f"{where}: expected an object ({typ})")
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for k, v in obj.items():
        if k not in by_json:
            out.append(f"{where}: unknown field '{k}' in {typ}")
            continue
        if v is not None:
            model_check(kc, v, cls.openapi_types[by_json[k]], f"{where}.{k}", out)


def k8s_validate(kc, doc, where):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in K8S_MODELS:
        err(where, f"unexpected object {key}")
        return
    out = []
    model_check(kc, doc, K8S_MODELS[key], f"{doc['kind']}/{doc.get('metadata', {}).get('name')}", out)
    for o in out:
        err(where, o)
    try:  # required fields, as the client checks them
        kc.ApiClient()._ApiClient__deserialize(doc, K8S_MODELS[key])
    except ValueError as e:
        err(where, f"{doc['kind']}/{doc.get('metadata', {}).get('name')}: {e}")
    except AttributeError:
        pass


def pods_of(docs):
    """(workload doc, pod template) for Deployments and StatefulSets."""
    return [(d, d["spec"]["template"]) for d in docs
            if d.get("kind") in ("Deployment", "StatefulSet")]


def env_of(c):
    return {e["name"]: e.get("value") for e in c.get("env", []) if "value" in e}


def check_k8s_layout(name, docs, where):
    by = {}
    for d in docs:
        by.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    cms, secrets, svcs = by.get("ConfigMap", {}), by.get("Secret", {}), by.get("Service", {})
    sec_keys = {n: set((s.get("stringData") or {}).keys()) | set((s.get("data") or {}).keys())
                for n, s in secrets.items()}
    for n in ("ELEVENLABS_API_KEY", "EXOPLEX_WEBHOOK_SECRET", "EXOPLEX_AUTH_BASIC", "EXOPLEX_AUTH_TOKENS"):
        if not any(n in k for k in sec_keys.values()):
            err(where, f"{name}: no Secret holds {n}")
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    if len(namespaces) != 1:
        err(where, f"{name}: objects in several namespaces {namespaces}")
    listeners, dialers = {}, {}  # (setting) -> (container, port / host:port)
    seen_components = set()
    for w, tpl in pods_of(docs):
        wn = w["metadata"]["name"]
        sel = w["spec"]["selector"].get("matchLabels", {})
        labels = tpl["metadata"].get("labels", {})
        if any(labels.get(k) != v for k, v in sel.items()):
            err(where, f"{name}: {wn}'s selector does not match its pod labels")
        spec = tpl["spec"]
        psc = spec.get("securityContext", {})
        if not psc.get("runAsNonRoot"):
            err(where, f"{name}: {wn} does not set runAsNonRoot")
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        claim_names = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for c in spec["containers"]:
            cn = f"{wn}/{c['name']}"
            comp = next((x for x in COMPONENTS if f"exoplex-{x}" in c.get("image", "")), None)
            if not comp:
                err(where, f"{name}: {cn} runs no exoplex component image")
                continue
            seen_components.add(comp)
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for pn in ports:
                if pn and (len(pn) > 15 or not re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", pn)):
                    err(where, f"{name}: {cn}: port name '{pn}' is not a valid IANA service name")
            env = env_of(c)
            admin = env.get("EXOPLEX_ADMIN", "")
            if not admin.startswith("0.0.0.0:"):
                err(where, f"{name}: {cn}: EXOPLEX_ADMIN must listen on the pod IP (0.0.0.0:port) for probes")
            for probe, want in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                p = c.get(probe, {}).get("httpGet", {})
                if p.get("path") != want:
                    err(where, f"{name}: {cn}: {probe} is not GET {want}")
                port = p.get("port")
                num = ports.get(port, port)
                if str(num) != admin.rsplit(":", 1)[-1]:
                    err(where, f"{name}: {cn}: {probe} port {port} is not the admin port {admin}")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                err(where, f"{name}: {cn}: resources need requests and limits")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem"):
                err(where, f"{name}: {cn}: not hardened (allowPrivilegeEscalation false, readOnlyRootFilesystem)")
            for ef in c.get("envFrom", []):
                ref = ef.get("configMapRef", {}).get("name")
                if ref and ref not in cms:
                    err(where, f"{name}: {cn}: ConfigMap {ref} does not exist")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref.get("key") not in sec_keys.get(ref.get("name"), set()):
                    err(where, f"{name}: {cn}: Secret {ref.get('name')} has no key {ref.get('key')}")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            for mp, vn in mounts.items():
                if vn not in vols and vn not in claim_names:
                    err(where, f"{name}: {cn}: volume {vn} is not defined")
            if "/run/exoplex" not in mounts:
                err(where, f"{name}: {cn}: nothing writable at /run/exoplex (bus dir, taps)")
            if comp == "egress" and not any(
                    "persistentVolumeClaim" in vols.get(mounts.get(mp), {}) or mounts.get(mp) in claim_names
                    for mp in mounts if env.get("EXOPLEX_STATE_DIR") == mp):
                err(where, f"{name}: {cn}: EXOPLEX_STATE_DIR is not on a persistent volume")
            for setting in ("EXOPLEX_BUS_TRANSCODER", "EXOPLEX_BUS_EGRESS", "EXOPLEX_BUS_CONTROL"):
                url = env.get(setting)
                if not url:
                    continue
                m = re.match(r"tcp://([^:/]+):(\d+)$", url)
                if not m:
                    err(where, f"{name}: {cn}: {setting}={url} is not tcp://host:port")
                    continue
                host, port = m.group(1), int(m.group(2))
                if host == "0.0.0.0":
                    if port not in ports.values():
                        err(where, f"{name}: {cn}: listens on {port}, not a container port")
                    listeners.setdefault(setting, []).append((cn, port, labels))
                else:
                    dialers.setdefault(setting, []).append((cn, host, port))
            if "EXOPLEX_BUS_DIR" in env and mounts.get(env["EXOPLEX_BUS_DIR"]) is None:
                err(where, f"{name}: {cn}: EXOPLEX_BUS_DIR is not a mounted volume")
        if w["kind"] == "Deployment" and name == "split" and w["spec"].get("replicas", 1) != 1:
            err(where, f"{name}: {wn}: a bus link has one peer: replicas must be 1 per cell")
    if seen_components != set(COMPONENTS):
        err(where, f"{name}: components {sorted(seen_components)}, want all three")
    # tcp:// bus: each link has one listener and one dialer, and the
    # dialer's host is a Service that selects the listener and maps the port.
    for setting in set(listeners) | set(dialers):
        ls, ds = listeners.get(setting, []), dialers.get(setting, [])
        if len(ls) != 1 or len(ds) != 1:
            err(where, f"{name}: {setting}: {len(ls)} listener(s) and {len(ds)} dialer(s), want one each")
            continue
        (lc, lport, llabels), (dc, host, dport) = ls[0], ds[0]
        svc = svcs.get(host.split(".")[0])
        if not svc:
            err(where, f"{name}: {dc} dials {host}, which is not a Service here")
            continue
        sel = svc["spec"].get("selector", {})
        if any(llabels.get(k) != v for k, v in sel.items()):
            err(where, f"{name}: Service {host} does not select {lc}")
        sp = [p for p in svc["spec"]["ports"] if p["port"] == dport]
        if not sp:
            err(where, f"{name}: Service {host} has no port {dport}")
        if not svc["spec"].get("publishNotReadyAddresses"):
            err(where, f"{name}: Service {host} carries the bus: it must publish not-ready addresses")
    # The single-pod variant: all three in one pod, one shared bus dir.
    for w, tpl in pods_of(docs):
        cs = tpl["spec"]["containers"]
        if len(cs) == 3:
            dirs = {env_of(c).get("EXOPLEX_BUS_DIR") for c in cs}
            vols = {tuple(m["name"] for m in c.get("volumeMounts", []) if m["mountPath"] in dirs) for c in cs}
            if len(dirs) != 1 or None in dirs or len(vols) != 1:
                err(where, f"{name}: {w['metadata']['name']}: the containers do not share one bus directory")
            vname = next(iter(vols))[0] if vols and next(iter(vols)) else None
            v = {x["name"]: x for x in tpl["spec"].get("volumes", [])}.get(vname, {})
            if "emptyDir" not in v:
                err(where, f"{name}: the shared bus directory is not an emptyDir")
            if any(env_of(c).get(s) for c in cs for s in ("EXOPLEX_BUS_TRANSCODER", "EXOPLEX_BUS_EGRESS", "EXOPLEX_BUS_CONTROL")):
                err(where, f"{name}: the single-pod variant should use ipc:// (no bus URLs)")
    # Services route to a named or numbered port the selected pods have.
    for sn, svc in svcs.items():
        sel = svc["spec"].get("selector", {})
        pods = [tpl for _, tpl in pods_of(docs)
                if all(tpl["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
        if not pods:
            err(where, f"{name}: Service {sn} selects no pod")
            continue
        names = {p.get("name") for tpl in pods for c in tpl["spec"]["containers"] for p in c.get("ports", [])}
        nums = {p["containerPort"] for tpl in pods for c in tpl["spec"]["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            if tp not in names and tp not in nums:
                err(where, f"{name}: Service {sn} port {p['port']} targets {tp}, which its pods do not have")


def kustomize_files(d):
    """The resource files a kustomization lists, recursively."""
    k = load_yaml_all(os.path.join(d, "kustomization.yaml"))[0]
    files = []
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(d, r))
        if os.path.isdir(p):
            files += kustomize_files(p)
        elif os.path.exists(p):
            files.append(p)
        else:
            err(os.path.join(d, "kustomization.yaml"), f"resource {r} does not exist")
    return files


def check_k8s():
    try:
        import kubernetes.client as kc
    except ImportError:
        err("deploy/k8s", "python3-kubernetes is not installed (make deps): no schema check")
        kc = None
    base = path("deploy", "k8s")
    listed = set()
    for layout in ("split", "cell"):
        d = os.path.join(base, layout)
        if not os.path.exists(os.path.join(d, "kustomization.yaml")):
            err(d, "no kustomization.yaml")
            continue
        files = kustomize_files(d)
        listed |= set(files)
        docs = []
        for f in files:
            for doc in load_yaml_all(f):
                if kc:
                    k8s_validate(kc, doc, f)
                docs.append(doc)
        if not ERRORS:
            check_k8s_layout(layout, docs, d)
    for f in glob.glob(os.path.join(base, "**", "*.yaml"), recursive=True):
        if os.path.basename(f) != "kustomization.yaml" and f not in listed:
            err(f, "not listed by any kustomization")


# ------------------------------------------------------------------- systemd

def unit(f):
    sec, out = None, {}
    for line in open(f):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            sec = s.strip("[]")
            continue
        k, _, v = s.partition("=")
        out.setdefault((sec, k.strip()), []).append(v.strip())
    return out


def check_systemd():
    d = path("deploy", "systemd")
    t = unit(os.path.join(d, "exoplex.target"))
    wants = " ".join(t.get(("Unit", "Wants"), []))
    admins = set()
    for c in COMPONENTS:
        f = os.path.join(d, f"exoplex-{c}.service")
        if not os.path.exists(f):
            err(f, "missing")
            continue
        u = unit(f)
        g = lambda s, k: u.get((s, k), [None])[-1]
        if f"exoplex-{c}.service" not in wants:
            err(d, f"exoplex.target does not want exoplex-{c}.service")
        want = {("Service", "Restart"): "always", ("Service", "NoNewPrivileges"): "yes",
                ("Service", "PrivateTmp"): "yes", ("Service", "ProtectSystem"): "strict",
                ("Service", "RuntimeDirectory"): "exoplex",
                ("Service", "RuntimeDirectoryPreserve"): "yes",
                ("Unit", "PartOf"): "exoplex.target", ("Install", "WantedBy"): "exoplex.target"}
        for k, v in want.items():
            if g(*k) != v:
                err(f, f"{k[0]}.{k[1]} is {g(*k)!r}, want {v!r}")
        if not (g("Service", "User") and g("Service", "User") != "root") and g("Service", "DynamicUser") != "yes":
            err(f, "no dedicated user (User= or DynamicUser=yes)")
        if not g("Service", "EnvironmentFile"):
            err(f, "no EnvironmentFile")
        ex = g("Service", "ExecStart") or ""
        if f"exoplex-{c}" not in ex or "--bus-dir /run/exoplex" not in ex:
            err(f, "ExecStart does not run exoplex-%s with --bus-dir /run/exoplex" % c)
        m = re.search(r"--admin (\S+)", ex)
        admins.add(m.group(1) if m else None)
        if c == "egress" and not g("Service", "StateDirectory"):
            err(f, "egress has no StateDirectory for its outbox")
    if None in admins or len(admins) != 3:
        err(d, f"the units need three distinct --admin addresses, have {admins}")


# ---------------------------------------------------------------- monitoring

def code_metric_names():
    """Every string literal in the non-test C sources that could name a
    metric (the registry prefixes them with exoplex_)."""
    names = set()
    for f in glob.glob(path("**", "*.c"), recursive=True):
        rel = os.path.relpath(f, ROOT)
        if rel.startswith("build") or f.endswith("_test.c"):
            continue
        names |= set(re.findall(r'"([a-z][a-z0-9_]*)"', open(f, errors="replace").read()))
    return {"exoplex_" + n for n in names}


def check_monitoring():
    d = path("deploy", "monitoring")
    known = code_metric_names()
    jobs = set()
    pf = os.path.join(d, "prometheus.yml")
    for sc in load_yaml_all(pf)[0].get("scrape_configs", []):
        jobs.add(sc["job_name"])

    def check_expr(where, expr):
        for m in sorted(set(re.findall(r"\bexoplex_[a-z0-9_]+", expr))):
            if m not in known:
                err(where, f"metric {m} is not exported by the code")
        for j in re.findall(r'job="([^"]+)"', expr):
            if j not in jobs:
                err(where, f"job {j} is not in prometheus.yml")

    af = os.path.join(d, "exoplex-alerts.yaml")
    rules = load_yaml_all(af)[0]
    n = 0
    for g in rules.get("groups", []):
        for r in g.get("rules", []):
            n += 1
            if "alert" not in r or "expr" not in r:
                err(af, f"rule {r} needs alert and expr")
                continue
            if r.get("labels", {}).get("severity") not in ("warning", "critical"):
                err(af, f"{r['alert']}: severity must be warning or critical")
            if not r.get("annotations", {}).get("summary"):
                err(af, f"{r['alert']}: no summary")
            check_expr(af, r["expr"])
    if n == 0:
        err(af, "no rules")
    df = os.path.join(d, "exoplex-dashboard.json")
    try:
        dash = json.load(open(df))
    except ValueError as e:
        err(df, f"not JSON: {e}")
        return
    exprs = []
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            continue
        if not p.get("targets"):
            err(df, f"panel {p.get('title')} has no query")
        for t in p.get("targets", []):
            exprs.append(t["expr"])
            check_expr(df, t["expr"])
    ids = [p.get("id") for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        err(df, "panel ids repeat")
    # What the issue asks the dashboard to show.
    alltext = " ".join(exprs)
    for want in ("exoplex_calls_active", "exoplex_personaplex_servers", "exoplex_bus_frames_dropped_total",
                 "exoplex_egress_reconnects_total", "exoplex_playout_lag_max_ms", "exoplex_webhook_backlog",
                 "exoplex_webhook_dead_letter_rows"):
        if want not in alltext:
            err(df, f"no panel shows {want}")
    # For promtool: the dashboard's queries as recording rules.
    out = os.environ.get("DASHBOARD_RULES_OUT")
    if out:
        rr = [{"record": f"dashboard:q{i}", "expr": e.replace("$instance", ".*")} for i, e in enumerate(exprs)]
        with open(out, "w") as fh:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rr}]}, fh)


def main():
    # OPS_ONLY=docker|compose|k8s|systemd|monitoring: one part (the
    # breakage tests, to stay quick).
    only = os.environ.get("OPS_ONLY")
    run = lambda part: not only or only == part
    stages = check_dockerfile() if run("docker") or run("compose") else None
    if run("compose"):
        check_compose(stages)
    if run("k8s"):
        check_k8s()
    if run("systemd"):
        check_systemd()
    if run("monitoring"):
        check_monitoring()
    for e in ERRORS:
        print(e)
    print(f"ops_manifests.py: {len(ERRORS)} problem(s)", file=sys.stderr)
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
