#!/usr/bin/env python3
"""bench/report.py - the numbers of bench/run.sh (python3 stdlib only).

  report.py run DIR          one load run's directory -> JSON on stdout
  report.py line RUN.json    one line about a run
  report.py clean RUN.json   exit 0 if every call of the run was clean
  report.py final TMP BASE   floor + runs -> BASE.json and BASE.md
"""
import glob
import json
import os
import re
import subprocess
import sys

HZ = os.sysconf("SC_CLK_TCK")
PROCS = ["ingress", "transcoder", "egress", "fakeplex", "call", "probe"]
TRIO = ["ingress", "transcoder", "egress"]
LOST_MAX_S = float(os.environ.get("BENCH_LOST_MAX_S", "1.5"))
UNDERRUN_MAX_MS = float(os.environ.get("BENCH_UNDERRUN_MAX_MS", "200"))
LAT_MAX_MS = float(os.environ.get("BENCH_LAT_MAX_MS", "50"))
BACKLOG_P50_MS = float(os.environ.get("BENCH_BACKLOG_P50_MS", "50"))

# Latency per direction, from the bus's arrival-age histograms:
# (name, process whose /metrics has it, link, kind, meaning)
AGES = [
    ("up", "egress", "egress", "uplink_ogg",
     "Exotel media arrival at ingress -> Ogg page arrival at egress"),
    ("down", "ingress", "transcoder", "playback_audio",
     "PersonaPlex message arrival at egress -> playback PCM arrival at "
     "ingress"),
    ("up_hop1", "transcoder", "transcoder", "caller_audio",
     "ingress -> transcoder"),
    ("down_hop1", "transcoder", "egress", "downlink_ogg",
     "egress -> transcoder"),
]


def read_proc(path):
    out = {"stat": {}, "rss": {}, "threads": {}, "ctxt": {}, "top": []}
    with open(path) as f:
        for line in f:
            w = line.rstrip("\n").split(" ", 2)
            if w[0] == "time":
                out["time"] = float(w[1])
            elif w[0] == "cpu":
                v = [int(x) for x in line.split()[2:]]
                # user nice system idle iowait irq softirq steal
                out["cpu_busy"] = sum(v[:8]) - v[3] - v[4]
                out["cpu_total"] = sum(v[:8])
            elif w[0] == "loadavg":
                out["loadavg"] = float(w[1].split()[0])
            elif w[0] == "stat" and len(w) == 3 and w[2]:
                rest = w[2].rsplit(")", 1)[1].split()
                out["stat"][w[1]] = int(rest[11]) + int(rest[12])
            elif w[0] == "rss" and len(w) == 3 and w[2]:
                out["rss"][w[1]] = int(w[2])
            elif w[0] == "threads" and len(w) == 3:
                out["threads"][w[1]] = int(w[2] or 0)
            elif w[0] == "ctxt" and len(w) == 3 and len(w[2].split()) == 2:
                out["ctxt"][w[1]] = [int(x) for x in w[2].split()]
            elif w[0] == "top":
                out["top"].append(line[4:].strip())
    return out


def read_metrics(path):
    m = {}
    if not os.path.exists(path):
        return m
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            k, _, v = line.rpartition(" ")
            try:
                m[k] = float(v)
            except ValueError:
                pass
    return m


def labels(key):
    mt = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?$", key)
    if not mt:
        return key, {}
    return mt.group(1), dict(re.findall(r'(\w+)="([^"]*)"', mt.group(3) or ""))


def hist(m0, m1, name, want):
    """Bucket deltas of histogram name whose labels include want."""
    b = {}
    for k, v in m1.items():
        n, l = labels(k)
        if n != name + "_bucket":
            continue
        if any(l.get(a) != x for a, x in want.items()):
            continue
        le = float("inf") if l["le"] == "+Inf" else float(l["le"])
        b[le] = v - m0.get(k, 0)
    return sorted(b.items())


def quantile(buckets, q):
    """Prometheus-style: linear inside the bucket that holds rank q."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def sum_metric(m, name, want):
    t = 0.0
    for k, v in m.items():
        n, l = labels(k)
        if n == name and all(l.get(a) == x for a, x in want.items()):
            t += v
    return t


def judge(s, n, rc, lat, stale=0):
    """Why a run of n calls is not clean (empty: clean): s is
    exoplex-call's summary, rc its exit code, lat the run's latency,
    stale the caller frames the transcoder dropped as too old."""
    why = []
    if not s:
        why.append("no summary")
    else:
        if s.get("calls_connected", 0) != n:
            why.append("%s of %d connected" % (s.get("calls_connected"), n))
        if s.get("violations", 0):
            why.append("%d violations" % s["violations"])
        sent = s.get("seconds_sent", 0) / max(1, s.get("calls", n))
        if s.get("min_seconds_received", 0) < sent - LOST_MAX_S:
            why.append("a call heard %.2f s of %.2f s" %
                       (s.get("min_seconds_received", 0), sent))
        if s.get("rms_dbfs", 0) < -50:
            why.append("silence heard (median %.1f dBFS)" % s["rms_dbfs"])
        if s.get("underrun_ms", 0) / n > UNDERRUN_MAX_MS:
            why.append("underruns %.0f ms per call" %
                       (s.get("underrun_ms", 0) / n))
    # The audio above cannot show a backlog toward PersonaPlex: the
    # shards decode its voice first, so the caller hears it on time while
    # the caller's own audio queues for up to a second. A median frame
    # past this age is a trio that does not keep up, not a stall.
    for d in ("up", "down"):
        p50 = lat.get(d, {}).get("p50_ms")
        if p50 is not None and p50 > BACKLOG_P50_MS:
            why.append("backlog: %s p50 %.0f ms" % (d, p50))
    # A transcoder that fell a second behind drops the caller's audio
    # (EXOPLEX_TRANSCODER_MAX_WAIT_MS); the calls may still hear most of
    # their own, but it did not keep up.
    if stale:
        why.append("transcoder dropped %d stale caller frames" % stale)
    if rc not in (0, 1):
        why.append("exoplex-call exit %d" % rc)
    return why


def run(d):
    with open(os.path.join(d, "params")) as f:
        p = f.read().split()
    profile, n, window, total, ramp_ms = p[0], int(p[1]), int(p[2]), \
        int(p[3]), int(p[4])
    envs = p[5:]
    idle = read_proc(os.path.join(d, "idle.proc"))
    a = read_proc(os.path.join(d, "start.proc"))
    b = read_proc(os.path.join(d, "end.proc"))
    wall = b["time"] - a["time"]
    call_s = n * wall
    r = {"profile": profile, "env": envs, "calls": n, "window_s": wall,
         "call_seconds_each": total, "ramp_ms": ramp_ms}
    if os.path.exists(os.path.join(d, "plex")):
        w = open(os.path.join(d, "plex")).read().split()
        r["stand_in"] = {"mode": w[0], "complexity": int(w[1])}
    cpu = {}
    for name in PROCS:
        if name in a["stat"] and name in b["stat"]:
            ticks = b["stat"][name] - a["stat"][name]
            cpu[name] = {"cpu_s": ticks / HZ,
                         "ms_per_call_s": ticks / HZ * 1000 / call_s,
                         "core_pct": ticks / HZ / wall * 100}
    trio = sum(cpu[x]["ms_per_call_s"] for x in TRIO if x in cpu)
    ours = sum(c["cpu_s"] for c in cpu.values())
    busy = (b["cpu_busy"] - a["cpu_busy"]) / HZ
    r["cpu"] = cpu
    r["trio_ms_per_call_s"] = trio
    # The floor measured in the window's own moments (exoplex-bench-floor
    # --probe): the host's speed swings, so this is the one to compare.
    r["probe"] = None
    try:
        with open(os.path.join(d, "probe.json")) as f:
            r["probe"] = json.load(f)
    except (OSError, ValueError):
        pass
    pf = probe_floor(r)
    r["trio_to_probe"] = trio / pf if pf else None
    r["trio_core_pct"] = sum(cpu[x]["core_pct"] for x in TRIO if x in cpu)
    r["machine"] = {
        "busy_core_pct": busy / wall * 100,
        "ours_core_pct": ours / wall * 100,
        "others_core_pct": max(0.0, busy - ours) / wall * 100,
        "loadavg_start": a.get("loadavg"), "loadavg_end": b.get("loadavg"),
        "loadavg_before": idle.get("loadavg"),
        "top_at_end": b["top"][:6],
    }
    rss_idle = sum(idle["rss"].get(x, 0) for x in TRIO)
    rss_load = sum(b["rss"].get(x, 0) for x in TRIO)
    r["rss_kb"] = {"idle": {x: idle["rss"].get(x) for x in TRIO},
                   "load": {x: b["rss"].get(x) for x in TRIO},
                   "per_call": (rss_load - rss_idle) / n,
                   "per_call_by_process": {
                       x: (b["rss"].get(x, 0) - idle["rss"].get(x, 0)) / n
                       for x in TRIO}}
    r["threads"] = b["threads"]
    # Thread switches over the window, all threads of each process:
    # voluntary (woken from sleep) and involuntary (preempted) per second.
    r["switches"] = {}
    for x in TRIO:
        if x in a["ctxt"] and x in b["ctxt"]:
            v, i = (b["ctxt"][x][k] - a["ctxt"][x][k] for k in (0, 1))
            r["switches"][x] = {"voluntary_per_s": v / wall,
                                "involuntary_per_s": i / wall,
                                "per_call_s": (v + i) / call_s}

    m0 = {x: read_metrics(os.path.join(d, "start.%s.metrics" % x))
          for x in TRIO + ["fakeplex"]}
    m1 = {x: read_metrics(os.path.join(d, "end.%s.metrics" % x))
          for x in TRIO + ["fakeplex"]}
    lat = {}
    for key, proc, link, kind, what in AGES:
        bk = hist(m0[proc], m1[proc], "exoplex_bus_frame_age_microseconds",
                  {"link": link, "kind": kind})
        cnt = bk[-1][1] if bk else 0
        lat[key] = {"what": what, "frames": cnt,
                    "p50_ms": (quantile(bk, .5) or 0) / 1000 if cnt else None,
                    "p99_ms": (quantile(bk, .99) or 0) / 1000 if cnt else None,
                    "p999_ms": (quantile(bk, .999) or 0) / 1000 if cnt else None}
    r["latency"] = lat

    bus = {}
    for x in TRIO:
        for k in m1[x]:
            nm, l = labels(k)
            if nm != "exoplex_bus_messages_total":
                continue
            msgs = m1[x][k] - m0[x].get(k, 0)
            fr = sum_metric(m1[x], "exoplex_bus_frames_total", l) - \
                sum_metric(m0[x], "exoplex_bus_frames_total", l)
            bus["%s %s %s" % (x, l["link"], l["dir"])] = {
                "messages_per_s": msgs / wall, "frames_per_s": fr / wall,
                "frames_per_message": fr / msgs if msgs else None}
        drop = sum_metric(m1[x], "exoplex_bus_frames_dropped_total", {}) - \
            sum_metric(m0[x], "exoplex_bus_frames_dropped_total", {})
        bus["%s dropped" % x] = drop
    r["bus"] = bus

    allocs = {}
    for x in TRIO:
        f0 = os.path.join(d, "start.%s.allocs" % x)
        f1 = os.path.join(d, "end.%s.allocs" % x)
        if not (os.path.exists(f0) and os.path.exists(f1)):
            continue
        w0 = open(f0).read().split()
        w1 = open(f1).read().split()
        if len(w0) < 4 or len(w1) < 4:
            continue
        fr = sum_metric(m1[x], "exoplex_bus_frames_total", {}) - \
            sum_metric(m0[x], "exoplex_bus_frames_total", {})
        mn = int(w1[1]) - int(w0[1])
        ot = int(w1[3]) - int(w0[3])
        allocs[x] = {"main_per_s": mn / wall, "other_per_s": ot / wall,
                     "bus_frames_per_s": fr / wall,
                     "main_per_frame": mn / fr if fr else None,
                     "other_per_frame": ot / fr if fr else None}
    r["allocs"] = allocs

    s = {}
    try:
        with open(os.path.join(d, "call.json")) as f:
            s = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        s = {}
    rc = int(open(os.path.join(d, "call.rc")).read().strip() or 9) \
        if os.path.exists(os.path.join(d, "call.rc")) else 9
    keep = ["calls", "calls_connected", "violations", "violations_by_kind",
            "underruns", "underrun_ms", "min_seconds_received",
            "seconds_sent", "seconds_received", "first_audio_ms",
            "max_lead_ms", "closed_by_server", "closed_by_client",
            "dominant_hz", "rms_dbfs", "gaps", "gap_ms", "notes"]
    r["call_summary"] = {k: s.get(k) for k in keep if k in s}
    r["call_exit"] = rc
    # The trio starts afresh for each run: the count since its start.
    r["transcoder_stale_frames"] = int(sum_metric(
        m1["transcoder"], "exoplex_transcoder_stale_frames_total", {}))
    why = judge(s, n, rc, r["latency"], r["transcoder_stale_frames"])
    r["clean"] = not why
    r["broken_because"] = why
    return r


def probe_floor(r):
    p = r.get("probe")
    return p["floor"] if p and p.get("stretches") else None


def line(r):
    lat = r["latency"]

    def f(v):
        return "-" if v is None else "%.2f" % v
    return ("%-8s %4d calls: trio %.2f ms/call-s (%s) = %s x the probed "
            "floor %s, fakeplex %.2f, "
            "call %.2f; machine %.0f%% (others %.0f%%); RSS %.0f kB/call; "
            "up p50/p99 %s/%s ms, down %s/%s ms; switches/s %s; %s" % (
                r["profile"], r["calls"], r["trio_ms_per_call_s"],
                " ".join("%s %.2f" % (x[0], r["cpu"][x]["ms_per_call_s"])
                         for x in TRIO if x in r["cpu"]),
                f(r.get("trio_to_probe")), f(probe_floor(r)),
                r["cpu"].get("fakeplex", {}).get("ms_per_call_s", 0),
                r["cpu"].get("call", {}).get("ms_per_call_s", 0),
                r["machine"]["busy_core_pct"],
                r["machine"]["others_core_pct"], r["rss_kb"]["per_call"],
                f(lat["up"]["p50_ms"]), f(lat["up"]["p99_ms"]),
                f(lat["down"]["p50_ms"]), f(lat["down"]["p99_ms"]),
                " ".join("%s %.0f" % (x[0], sw["voluntary_per_s"] +
                                      sw["involuntary_per_s"])
                         for x, sw in r.get("switches", {}).items()) or "-",
                "clean" if r["clean"] else "BROKEN: " +
                "; ".join(r["broken_because"])))


def machine():
    info = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for ln in out.splitlines():
            k, _, v = ln.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core",
                             "Hypervisor vendor", "CPU MHz",
                             "Virtualization type", "L2 cache", "L3 cache",
                             "Architecture"):
                info[k.strip()] = v.strip()
        info["kernel"] = os.uname().release
        flags = open("/proc/cpuinfo").read()
        info["avx512"] = "avx512f" in flags
    except OSError:
        pass
    return info


def floor_of(fl, profile, cx):
    pf = fl["profiles"]["default" if profile == "default" else "call"]
    return pf["floor"].get(str(cx))


def env_cx(env, default):
    for e in env:
        if e.startswith("EXOPLEX_OPUS_COMPLEXITY="):
            return int(e.split("=", 1)[1])
    return default


def final(tmp, base):
    fl = None
    if os.path.exists(os.path.join(tmp, "floor.json")):
        with open(os.path.join(tmp, "floor.json")) as f:
            fl = json.load(f)
    runs = {}
    for rj in sorted(glob.glob(os.path.join(tmp, "runs", "*", "run.json"))):
        with open(rj) as f:
            runs[os.path.basename(os.path.dirname(rj))] = json.load(f)
    cores = os.cpu_count()
    nng = []
    try:
        with open(os.path.join(tmp, "nng.jsonl")) as f:
            nng = [json.loads(ln) for ln in f if ln.strip()]
    except (OSError, ValueError):
        pass
    res = {"machine": machine(), "cores": cores, "floor": fl, "runs": runs,
           "nng": nng}
    defcx = fl["default_complexity"] if fl else 5
    # Per profile: the load run's ratio, and the sweep's best clean N.
    summ = {}
    for prof in ("default", "density"):
        sw = sorted((r for k, r in runs.items()
                     if k.startswith("sweep-%s-" % prof)),
                    key=lambda r: r["calls"])
        load = [r for k, r in runs.items()
                if k.startswith("load-%s-" % prof)]
        if not sw and not load:
            continue
        ref = load[0] if load else sw[-1]
        cx = env_cx(ref["env"], defcx)
        fms = floor_of(fl, prof, cx) if fl else None
        best = max([r["calls"] for r in sw if r["clean"]], default=0)
        # "Clean" is about the audio; near saturation a clean call can
        # still wait long. The most clean calls within a latency bound:
        best_lat = max([r["calls"] for r in sw if r["clean"] and
                        all((r["latency"][d]["p99_ms"] or 1e9) <= LAT_MAX_MS
                            for d in ("up", "down"))], default=0)
        first_bad = min([r["calls"] for r in sw if not r["clean"]],
                        default=None)
        summ[prof] = {
            "complexity": cx, "floor_ms_per_call_s": fms,
            "floor_calls": cores * 1000 / fms if fms else None,
            "load_run": ("load-%s-%d" % (prof, ref["calls"])) if load else None,
            "trio_ms_per_call_s": ref["trio_ms_per_call_s"],
            "trio_to_floor": ref["trio_ms_per_call_s"] / fms if fms else None,
            "most_clean_calls": best, "first_broken": first_bad,
            "most_clean_calls_p99_within": best_lat,
            "p99_bound_ms": LAT_MAX_MS,
            "swept": [r["calls"] for r in sw],
        }
        if fms and best:
            summ[prof]["clean_to_floor_calls"] = best / (cores * 1000 / fms)
        # The same against the floor probed during the runs: the load
        # run's own, and the median over the sweep's runs.
        pr = probe_floor(ref)
        sp = sorted(x for x in (probe_floor(r) for r in sw) if x)
        spm = sp[len(sp) // 2] if sp else None
        summ[prof].update({
            "probe_ms_per_call_s": pr,
            "trio_to_probe": ref["trio_ms_per_call_s"] / pr if pr else None,
            "sweep_probe_ms_per_call_s": spm,
            "probe_calls": cores * 1000 / spm if spm else None,
        })
        if spm and best:
            summ[prof]["clean_to_probe_calls"] = best / (cores * 1000 / spm)
        spread = [(k, r) for k, r in runs.items()
                  if k.startswith("spread-%s-" % prof)]
        if spread:
            k, r = spread[0]
            summ[prof]["spread_run"] = k
            summ[prof]["spread_latency"] = r["latency"]
            summ[prof]["spread_clean"] = r["clean"]
    res["summary"] = summ
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(markdown(res))


def fmt(v, p=2):
    return "-" if v is None else ("%.*f" % (p, v))


def markdown(res):
    o = []
    fl = res["floor"]
    m = res["machine"]
    o.append("# exoplex benchmark: %s\n" % os.path.basename(
        sys.argv[3] if len(sys.argv) > 3 else ""))
    o.append("Machine: %s, %s CPUs (%s), kernel %s, AVX-512 %s.\n" % (
        m.get("Model name", "?"), m.get("CPU(s)", "?"),
        m.get("Hypervisor vendor", "bare metal"), m.get("kernel", "?"),
        "yes" if m.get("avx512") else "no"))
    if fl:
        o.append("## Codec floor (ms CPU per call-second)\n")
        o.append("%g s of speech-like 8 kHz audio, %d repetitions "
                 "(median); soxr engine %s; %s.\n" % (
                     fl["seconds"], fl["reps"], fl["soxr_engine"],
                     fl["libopus"]))
        for name, pf in fl["profiles"].items():
            o.append("Profile **%s** (Opus at %d Hz up): soxr up %s, Opus "
                     "decode at %s Hz %s; resampler backlog up %s ms; "
                     "encoder look-ahead %s ms.\n" % (
                         name, pf["opus_rate"],
                         fmt(pf["resample_up"]["median"], 3),
                         pf.get("decode_rate", "?"),
                         fmt(pf["decode"]["median"], 3),
                         fmt(pf["up_backlog_ms"], 1),
                         fmt(pf["lookahead_ms"], 1)))
        cxs = sorted(int(c) for c in fl["profiles"]["default"]["floor"])
        o.append("| complexity | " + " | ".join(str(c) for c in cxs) + " |")
        o.append("|---" * (len(cxs) + 1) + "|")
        for name, pf in fl["profiles"].items():
            o.append("| %s: encode | " % name + " | ".join(
                fmt(pf["encode"][str(c)]["median"]) for c in cxs) + " |")
            o.append("| %s: **floor** | " % name + " | ".join(
                fmt(pf["floor"][str(c)]) for c in cxs) + " |")
            o.append("| %s: calls on %d cores | " % (name, res["cores"]) +
                     " | ".join("%.0f" % (res["cores"] * 1000 /
                                          pf["floor"][str(c)])
                                for c in cxs) + " |")
        o.append("")
    if res.get("nng"):
        o.append("## What an NNG message costs (exoplex-bench-nng)\n")
        o.append("pair1 over ipc:// between two processes, CPU of every "
                 "thread of each end per message (the sender's includes "
                 "its wake from sleep for each, as a process woken by its "
                 "next frames pays): the price each bus message costs, "
                 "which the bus's hold (docs/bus.md) trades against a few "
                 "milliseconds.\n")
        o.append("| messages/s | bytes | sender µs/msg | receiver µs/msg |")
        o.append("|---|---|---|---|")
        for d in res["nng"]:
            o.append("| %d | %d | %.1f | %.1f |" % (
                d["rate"], d["bytes"], d["sender_us_per_msg"],
                d["receiver_us_per_msg"]))
        o.append("")
    o.append("## Load runs\n")
    o.append("CPU is ms of CPU per call-second (utime+stime from "
             "/proc/<pid>/stat over the steady window, divided by calls x "
             "window). `others` is the machine's busy CPU not used by the "
             "processes of the run (other users of the machine). Latency: "
             "the frames' age on arrival (now - ts_us), p50/p99 ms.\n")
    o.append("| run | calls | clean | ingress | transcoder | egress | "
             "**trio** | trio / floor | probed floor | trio / probed | "
             "fakeplex | exoplex-call | machine "
             "busy % | others % | load avg | RSS kB/call | up p50/p99 | "
             "down p50/p99 | frames/msg (t->e, i->t) |")
    o.append("|---" * 19 + "|")

    def key(k):
        w = k.split("-")
        return ({"load": 0, "spread": 1}.get(w[0], 2), w[1], int(w[2]))
    for k in sorted(res["runs"], key=key):
        r = res["runs"][k]
        c = r["cpu"]
        cx = env_cx(r["env"], fl["default_complexity"] if fl else 5)
        fms = floor_of(fl, r["profile"], cx) if fl else None
        lat = r["latency"]
        fpm = r["bus"].get("transcoder egress out", {}).get(
            "frames_per_message")
        fpm2 = r["bus"].get("ingress transcoder out", {}).get(
            "frames_per_message")
        o.append("| %s | %d | %s | %s | %s | %s | **%s** | %s | %s | %s | "
                 "%s | %s | "
                 "%.0f | %.0f | %.2f | %s | %s / %s | %s / %s | %s, %s |" % (
                     k, r["calls"],
                     "yes" if r["clean"] else
                     "no: " + "; ".join(r["broken_because"]),
                     fmt(c.get("ingress", {}).get("ms_per_call_s")),
                     fmt(c.get("transcoder", {}).get("ms_per_call_s")),
                     fmt(c.get("egress", {}).get("ms_per_call_s")),
                     fmt(r["trio_ms_per_call_s"]),
                     fmt(r["trio_ms_per_call_s"] / fms if fms else None),
                     fmt(probe_floor(r)), fmt(r.get("trio_to_probe")),
                     fmt(c.get("fakeplex", {}).get("ms_per_call_s")),
                     fmt(c.get("call", {}).get("ms_per_call_s")),
                     r["machine"]["busy_core_pct"],
                     r["machine"]["others_core_pct"],
                     r["machine"]["loadavg_before"] or 0,
                     fmt(r["rss_kb"]["per_call"], 0),
                     fmt(lat["up"]["p50_ms"]), fmt(lat["up"]["p99_ms"]),
                     fmt(lat["down"]["p50_ms"]), fmt(lat["down"]["p99_ms"]),
                     fmt(fpm, 1), fmt(fpm2, 1)))
    o.append("")
    sw = [(k, res["runs"][k]["switches"])
          for k in sorted(res["runs"], key=key)
          if res["runs"][k].get("switches")]
    if sw:
        o.append("## Thread switches under load\n")
        o.append("Context switches of all of a process's threads over the "
                 "window (/proc/<pid>/task/*/status): voluntary = a thread "
                 "slept and was woken, involuntary = preempted. Each costs "
                 "kernel time; being a count, it shows what a change "
                 "saves when the host's speed swings hide its CPU.\n")
        o.append("| run | process | voluntary /s | involuntary /s | "
                 "per call-second |")
        o.append("|---|---|---|---|---|")
        for k, v in sw:
            for x, c in v.items():
                o.append("| %s | %s | %.0f | %.0f | %.1f |" % (
                    k, x, c["voluntary_per_s"], c["involuntary_per_s"],
                    c["per_call_s"]))
        o.append("")
    al = [(k, r["allocs"]) for k, r in res["runs"].items() if r["allocs"]]
    if al:
        o.append("## Heap allocations under load (LD_PRELOAD counter)\n")
        o.append("| run | process | main thread /s | per bus frame | "
                 "other threads /s | per bus frame |")
        o.append("|---|---|---|---|---|---|")
        for k, a in sorted(al):
            for x, v in a.items():
                o.append("| %s | %s | %.0f | %s | %.0f | %s |" % (
                    k, x, v["main_per_s"], fmt(v["main_per_frame"]),
                    v["other_per_s"], fmt(v["other_per_frame"])))
        o.append("")
    o.append("## Summary\n")
    for prof, s in res.get("summary", {}).items():
        o.append("- **%s** (complexity %d): floor %s ms/call-s (%s calls "
                 "on %d cores); trio %s ms/call-s = %s x floor; most clean "
                 "calls in the sweep %d (first broken: %s)%s.\n" % (
                     prof, s["complexity"], fmt(s["floor_ms_per_call_s"]),
                     fmt(s["floor_calls"], 0), res["cores"],
                     fmt(s["trio_ms_per_call_s"]), fmt(s["trio_to_floor"]),
                     s["most_clean_calls"], s["first_broken"],
                     (", %.0f%% of the floor's calls" %
                      (100 * s["clean_to_floor_calls"]))
                     if s.get("clean_to_floor_calls") else ""))
        o.append("  Of those, the most whose p99 latency stayed within %g ms "
                 "each way: %d.\n" % (s["p99_bound_ms"],
                                      s["most_clean_calls_p99_within"]))
        if s.get("spread_latency"):
            lt = s["spread_latency"]
            o.append("  With the calls' phases spread (%s, %s): up p50/p99 "
                     "%s / %s ms, down %s / %s ms.\n" % (
                         s["spread_run"],
                         "clean" if s["spread_clean"] else "not clean",
                         fmt(lt["up"]["p50_ms"]), fmt(lt["up"]["p99_ms"]),
                         fmt(lt["down"]["p50_ms"]),
                         fmt(lt["down"]["p99_ms"])))
        if s.get("probe_ms_per_call_s") or s.get("probe_calls"):
            o.append("  Against the floor probed during the runs (same "
                     "moments): load run's floor %s ms/call-s, trio = %s x; "
                     "the sweep's median floor %s (%s calls on %d cores)%s."
                     "\n" % (
                         fmt(s.get("probe_ms_per_call_s")),
                         fmt(s.get("trio_to_probe")),
                         fmt(s.get("sweep_probe_ms_per_call_s")),
                         fmt(s.get("probe_calls"), 0), res["cores"],
                         (", most clean = %.0f%% of those" %
                          (100 * s["clean_to_probe_calls"]))
                         if s.get("clean_to_probe_calls") else ""))
    return "\n".join(o) + "\n"


def main():
    cmd = sys.argv[1]
    if cmd == "run":
        json.dump(run(sys.argv[2]), sys.stdout, indent=1)
    elif cmd == "line":
        print(line(json.load(open(sys.argv[2]))))
    elif cmd == "clean":
        sys.exit(0 if json.load(open(sys.argv[2]))["clean"] else 1)
    elif cmd == "final":
        final(sys.argv[2], sys.argv[3])
    else:
        sys.exit(2)


if __name__ == "__main__":
    main()
