#!/usr/bin/python3
"""The kernel test lane's tests, run INSIDE the VM that .ci/vm-lane boots
(Debian's kernel, two emulated Intel 82576 NICs `igb` cabled together by a
QEMU hub, nothing else on the network). It runs the labctl built on the host
(the guest sees the host's files read-only) against real SR-IOV hardware as
QEMU emulates it, and the kernel's own XFRM ESP, VRF, 802.1Q/802.1ad and bridge VLAN filtering.

Each test prints one line `PASS|FAIL|SKIP <name>: <detail>` to stdout and to
<out>/results.txt; .ci/vm-lane fails the lane on any FAIL.

usage: vm-guest.py OUT_DIR LABCTL REPO KILL_RUNS [ONLY: comma-separated test names]
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback

OUT, LABCTL, REPO, KILL_RUNS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ONLY = sys.argv[5] if len(sys.argv) > 5 else ""  # the guest does not inherit the host's environment
LABS = os.path.join(OUT, "labs")
os.makedirs(LABS, exist_ok=True)
RESULTS = open(os.path.join(OUT, "results.txt"), "a", buffering=1)


def report(status, name, detail):
    line = f"{status} {name}: {detail}"
    print(line, flush=True)
    RESULTS.write(line + "\n")


def sh(*argv, check=True, timeout=300):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def labctl(*args, check=True, timeout=600):
    return sh(LABCTL, *args, check=check, timeout=timeout)


def ip_json(*args):
    return json.loads(sh("ip", "-j", *args).stdout or "[]")


def write_lab(name, text):
    path = os.path.join(LABS, f"{name}.lua")
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------- host state

PCI = {}  # PF name -> PCI address, read once at setup: a PF may come back as dev<N>


def pci_of(ifname):
    if ifname not in PCI:
        PCI[ifname] = os.path.basename(os.readlink(f"/sys/class/net/{ifname}/device"))
    return PCI[ifname]


def numvfs(pci):
    with open(f"/sys/bus/pci/devices/{pci}/sriov_numvfs") as f:
        return int(f.read())


def set_numvfs(pci, n):
    with open(f"/sys/bus/pci/devices/{pci}/sriov_numvfs", "w") as f:
        f.write("0")
    if n:
        with open(f"/sys/bus/pci/devices/{pci}/sriov_numvfs", "w") as f:
            f.write(str(n))


def vf_info(vf):
    vlan = (vf.get("vlan_list") or [{}])[0]
    rate = vf.get("rate", {})
    return {
        "vf": vf.get("vf"),
        "mac": vf.get("address"),
        "vlan": vlan.get("vlan", 0),
        "qos": vlan.get("qos", 0),
        "spoofchk": vf.get("spoofchk"),
        "trust": vf.get("trust"),
        "link_state": vf.get("link_state"),
        "max_tx_rate": rate.get("max_tx", 0),
        "min_tx_rate": rate.get("min_tx", 0),
    }


def host_state(pfs):
    """Everything a lab may touch, in the initial namespace: each device's
    name, MTU, MAC, alias, altnames, admin state, addresses; each PF's VF
    count and VF settings; and labctl's own leftovers."""
    links = ip_json("-d", "link", "show")
    addrs = {a["ifname"]: sorted(f"{i['local']}/{i['prefixlen']}" for i in a.get("addr_info", []))
             for a in ip_json("addr", "show")}
    devices = {}
    for l in links:
        if l["ifname"] == "lo":
            continue
        devices[l["ifname"]] = {
            "mtu": l.get("mtu"),
            "mac": l.get("address"),
            "alias": l.get("ifalias"),
            "altnames": sorted(l.get("altnames", [])),
            "up": "UP" in l.get("flags", []),
            "parent": l.get("parentdev"),
            "addresses": addrs.get(l["ifname"], []),
            "vfs": [vf_info(v) for v in l.get("vfinfo_list", [])],
        }
    counts = {pf: numvfs(pci_of(pf)) for pf in pfs}
    netns = sh("ip", "netns", "list").stdout.split()
    labs = [d for d in os.listdir("/run/labctl") if not d.startswith(".")] if os.path.isdir("/run/labctl") else []
    claims = os.listdir("/run/labctl/.claims") if os.path.isdir("/run/labctl/.claims") else []
    return {"devices": devices, "numvfs": counts, "netns": netns, "labs": labs, "claims": claims}


def differences(before, after):
    out = []
    for key in ("numvfs", "netns", "labs", "claims"):
        if before[key] != after[key]:
            out.append(f"{key}: {before[key]} -> {after[key]}")
    b, a = before["devices"], after["devices"]
    for name in sorted(set(b) | set(a)):
        if name not in a:
            out.append(f"{name} is gone")
        elif name not in b:
            out.append(f"new device {name}: {a[name]}")
        else:
            for field in b[name]:
                if b[name][field] != a[name][field]:
                    out.append(f"{name}.{field}: {b[name][field]} -> {a[name][field]}")
    return out


# ---------------------------------------------------------------- setup

def find_pfs():
    pfs = []
    for name in sorted(os.listdir("/sys/class/net")):
        try:
            driver = os.path.basename(os.readlink(f"/sys/class/net/{name}/device/driver"))
        except OSError:
            continue
        if driver == "igb":
            pfs.append(name)
    return pfs


def setup():
    for module in ["igb", "igbvf", "esp4", "esp6", "xfrm_user", "xfrm_interface", "af_key"]:
        sh("modprobe", module, check=False)
    for _ in range(100):
        pfs = find_pfs()
        if len(pfs) >= 2:
            break
        time.sleep(0.1)
    for pf in pfs:
        pci_of(pf)
        sh("ip", "link", "set", pf, "up")
    # Wait for carrier across the hub (VF traffic needs the PFs' link up).
    for _ in range(100):
        if all(open(f"/sys/class/net/{pf}/carrier").read().strip() == "1" for pf in pfs):
            break
        time.sleep(0.1)
    return pfs


def wait_vf_netdevs(pf, n):
    pci = pci_of(pf)
    for _ in range(200):
        names = []
        for i in range(n):
            d = f"/sys/bus/pci/devices/{pci}/virtfn{i}/net"
            if os.path.isdir(d) and os.listdir(d):
                names.append(os.listdir(d)[0])
        if len(names) == n:
            return names
        time.sleep(0.1)
    raise RuntimeError(f"VFs of {pf} did not appear")


# ---------------------------------------------------------------- tests

def lab_settings(pf, vf0):
    return f'''lab {{ name = "settings" }}
local h1 = node("h1")
sriov("{pf}", {{ vfs = 3, vf = {{ [0] = {{ {vf0} }},
  [1] = {{ mac = "02:00:00:00:10:01", spoofchk = true, trust = false }},
  [2] = {{ mac = "02:00:00:00:10:02", vlan = 4094 }} }} }})
h1:vf("{pf}", 1, {{ name = "vf1", "198.18.7.1/24" }})
'''


def vfs_of(pf):
    return {v["vf"]: v for v in (vf_info(x) for x in ip_json("-d", "link", "show", pf)[0].get("vfinfo_list", []))}


def test_vf_settings(pfs):
    pf = pfs[0]
    before = host_state(pfs)
    lab = write_lab("settings", lab_settings(pf, 'mac = "02:00:00:00:10:00", vlan = 100, qos = 3, spoofchk = false, trust = true'))
    labctl("up", lab)
    try:
        got = vfs_of(pf)
        want = {
            0: {"mac": "02:00:00:00:10:00", "vlan": 100, "qos": 3, "spoofchk": False, "trust": True},
            1: {"mac": "02:00:00:00:10:01", "spoofchk": True, "trust": False},
            2: {"mac": "02:00:00:00:10:02", "vlan": 4094},
        }
        wrong = [f"vf {i} {k}: want {v}, got {got.get(i, {}).get(k)}" for i, w in want.items() for k, v in w.items()
                 if got.get(i, {}).get(k) != v]
        count = numvfs(pci_of(pf))
        inside = sh("ip", "netns", "exec", "settings-h1", "ip", "-j", "-d", "addr", "show", "vf1")
        vf1 = json.loads(inside.stdout)[0]
        vf1_pci = os.path.basename(os.readlink(f"/sys/bus/pci/devices/{pci_of(pf)}/virtfn1"))
        if vf1.get("parentdev") != vf1_pci:
            wrong.append(f"h1:vf1 is {vf1.get('parentdev')}, not VF 1 ({vf1_pci})")
        if "198.18.7.1" not in [a["local"] for a in vf1.get("addr_info", [])]:
            wrong.append("h1:vf1 lacks 198.18.7.1/24")
    finally:
        labctl("down", "settings")
    after = host_state(pfs)
    diff = differences(before, after)
    if count != 3:
        wrong.append(f"sriov_numvfs is {count}, not 3")
    if wrong or diff:
        report("FAIL", "sriov-vf-settings", "; ".join(wrong + [f"not restored: {d}" for d in diff]))
    else:
        report("PASS", "sriov-vf-settings", f"{pf}: 3 VFs; mac, vlan 100 qos 3, vlan 4094, spoofchk on/off, trust on/off read back from IFLA_VFINFO_LIST; VF 1 in h1 as vf1 with its address; down restored numvfs 0 and every device")


def test_optional_setting(pfs, name, setting, check):
    """A VF setting the igb driver may not implement: SKIP with the kernel's answer if so."""
    pf = pfs[0]
    before = host_state(pfs)
    lab = write_lab(name, lab_settings(pf, setting).replace('"settings"', f'"{name}"'))
    up = labctl("up", lab, check=False)
    if up.returncode != 0:
        left = differences(before, host_state(pfs))
        detail = up.stderr.strip().splitlines()[0] if up.stderr.strip() else f"exit {up.returncode}"
        if left:
            report("FAIL", name, f"up failed ({detail}) and the rollback left: {left}")
        elif "not supported" in up.stderr.lower() or "invalid argument" in up.stderr.lower():
            report("SKIP", name, f"the igb driver refuses it ({detail}); rollback restored everything")
        else:
            report("FAIL", name, f"up failed: {up.stderr.strip()}")
        return
    got = vfs_of(pf)[0]
    labctl("down", name)
    diff = differences(before, host_state(pfs))
    problem = check(got)
    if problem or diff:
        report("FAIL", name, "; ".join(([problem] if problem else []) + [f"not restored: {d}" for d in diff]))
    else:
        report("PASS", name, f"{setting} read back ({got}); restored on down")


def lab_traffic(pfs):
    return f'''lab {{ name = "traffic" }}
local h1, h2 = node("h1"), node("h2")
sriov("{pfs[0]}", {{ vfs = 1, vf = {{ [0] = {{ mac = "02:00:00:00:20:01", spoofchk = true }} }} }})
sriov("{pfs[1]}", {{ vfs = 1, vf = {{ [0] = {{ mac = "02:00:00:00:20:02" }} }} }})
h1:vf("{pfs[0]}", 0, {{ name = "vf0", "198.18.9.1/24" }})
h2:vf("{pfs[1]}", 0, {{ name = "vf0", "198.18.9.2/24" }})
'''


def test_vf_traffic(pfs):
    before = host_state(pfs)
    labctl("up", write_lab("traffic", lab_traffic(pfs)))
    try:
        ping = labctl("exec", "traffic", "h1", "--", "ping", "-c", "5", "-i", "0.2", "-W", "3", "198.18.9.2", check=False)
        neigh = labctl("exec", "traffic", "h1", "--", "ip", "neigh", "show", "198.18.9.2", check=False).stdout.strip()
    finally:
        labctl("down", "traffic")
    diff = differences(before, host_state(pfs))
    ok = ping.returncode == 0 and " 0% packet loss" in ping.stdout
    summary = [l for l in ping.stdout.splitlines() if "packet loss" in l]
    if ok and not diff:
        report("PASS", "sriov-vf-to-vf-traffic", f"h1 (VF 0 of {pfs[0]}) -> h2 (VF 0 of {pfs[1]}) across the hub: {summary[0] if summary else ''}; neighbour {neigh}; restored")
    else:
        report("FAIL", "sriov-vf-to-vf-traffic", f"ping: {ping.stdout.strip()} {ping.stderr.strip()}; not restored: {diff}")


def decorate_nic(pf):
    """Give a NIC something to restore: alias, altname, MTU (and it is up)."""
    sh("ip", "link", "set", pf, "mtu", "1400", "alias", "lane uplink")
    sh("ip", "link", "property", "add", "dev", pf, "altname", f"{pf}-alt", check=False)


def lab_claim(pfs, vfs=2, experiment=""):
    return f'''lab {{ name = "claim" }}
local r1 = node("r1", {{ forwarding = true }})
local h1, h2 = node("h1"), node("h2")
sriov("{pfs[0]}", {{ vfs = {vfs}, vf = {{ [0] = {{ mac = "02:00:00:00:30:01", vlan = 0, trust = true }},
                                     [1] = {{ mac = "02:00:00:00:30:02", spoofchk = false }} }} }})
r1:nic("{pfs[1]}", {{ name = "wan0", "198.18.8.1/24", mtu = 1500 }})
h1:vf("{pfs[0]}", 0, {{ name = "lan0", "198.18.8.2/24" }})
h2:vf("{pfs[0]}", 1, {{ name = "lan0", "198.18.8.3/24" }})
{experiment}
'''


def test_nic_claim(pfs):
    before = host_state(pfs)
    labctl("up", write_lab("claim", lab_claim(pfs)))
    try:
        wan = json.loads(labctl("exec", "claim", "r1", "--", "ip", "-j", "-d", "addr", "show", "wan0").stdout)[0]
        ping = labctl("exec", "claim", "h1", "--", "ping", "-c", "3", "-i", "0.2", "-W", "3", "198.18.8.1", check=False)
        ping2 = labctl("exec", "claim", "h2", "--", "ping", "-c", "3", "-i", "0.2", "-W", "3", "198.18.8.1", check=False)
    finally:
        labctl("down", "claim")
    diff = differences(before, host_state(pfs))
    problems = []
    if wan.get("parentdev") != pci_of(pfs[1]) or wan.get("mtu") != 1500:
        problems.append(f"r1:wan0 is {wan.get('parentdev')} mtu {wan.get('mtu')}")
    for p, who in [(ping, "h1"), (ping2, "h2")]:
        if p.returncode != 0:
            problems.append(f"{who} -> r1:wan0: {p.stdout.strip()} {p.stderr.strip()}")
    if problems or diff:
        report("FAIL", "nic-claim-and-vfs", "; ".join(problems + [f"not restored: {d}" for d in diff]))
    else:
        report("PASS", "nic-claim-and-vfs", f"{pfs[1]} claimed whole into r1 as wan0 (mtu 1500), VFs 0 and 1 of {pfs[0]} in h1 and h2, both ping r1 across the hub; down restored {pfs[1]}'s name, MTU 1400, alias, altname, up state and {pfs[0]}'s VFs")


def netns_of(lab):
    return [n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(f"{lab}-")]


def test_kill_and_delete(pfs):
    """kill -9 of `labctl run` mid-experiment, the namespaces deleted by hand
    (the kernel puts physical devices back into the initial namespace, maybe
    as dev<N>), then `labctl down`."""
    before = host_state(pfs)
    lab = write_lab("claim", lab_claim(pfs, experiment='experiment("idle", function(x) x:sleep(60) end)'))
    p = subprocess.Popen([LABCTL, "run", lab, "--out", os.path.join(OUT, "runs")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists("/run/labctl/claim/ready"):
        time.sleep(0.1)
    time.sleep(1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    spaces = netns_of("claim")
    for ns in spaces:
        sh("ip", "netns", "del", ns)
    time.sleep(1)
    strays = [name for name in host_state(pfs)["devices"] if name.startswith("dev")]
    labctl("down", "claim")
    diff = differences(before, host_state(pfs))
    if diff:
        report("FAIL", "kill9-netns-delete-down", f"not restored: {diff}")
    else:
        report("PASS", "kill9-netns-delete-down", f"labctl run killed mid-experiment, {len(spaces)} namespaces deleted by hand (devices back in the initial namespace: {strays or 'under their lab names'}), then down: every name, MTU, MAC, alias, altname, address, VF setting and VF count restored")


def test_kill_campaign(pfs, runs):
    """`runs` times: `labctl run` of a lab claiming a NIC and two VFs, killed
    -9 at a random moment (during up, or during the experiment); every other
    run also deletes the namespaces by hand; then `labctl down`. Counts runs
    that left anything different from before."""
    before = host_state(pfs)
    lab = write_lab("claim", lab_claim(pfs, experiment='experiment("idle", function(x) x:sleep(30) end)'))
    # How long `up` takes here, to spread the kills over it and the experiment.
    t0 = time.time()
    labctl("up", lab)
    up_time = time.time() - t0
    labctl("down", "claim")
    rng = random.Random(14)
    bad, moments = [], []
    for run in range(runs):
        delay = rng.uniform(0.0, up_time * 1.5)
        moments.append(round(delay, 2))
        p = subprocess.Popen([LABCTL, "run", lab, "--out", os.path.join(OUT, "runs")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if run % 2 == 1:
            for ns in netns_of("claim"):
                sh("ip", "netns", "del", ns, check=False)
        down = labctl("down", "claim", check=False)
        diff = differences(before, host_state(pfs))
        if down.returncode != 0 or diff:
            bad.append(f"run {run} (kill at {delay:.2f}s): down exit {down.returncode} {down.stderr.strip()} {diff}")
            # Put the machine back for the next run, so failures do not cascade.
            labctl("down", "claim", check=False)
    status = "PASS" if not bad else "FAIL"
    report(status, "kill9-campaign", f"{runs} runs, kill -9 at random moments in [0, {up_time * 1.5:.1f}s] (up takes {up_time:.1f}s here), odd runs also delete the namespaces; {len(bad)} left something not restored (compared: names, MTU, MAC, alias, altnames, up state, addresses, VF settings, VF counts, namespaces, state dirs, locks). moments: {moments}" + (f"; {bad}" if bad else ""))


def test_refusals(pfs):
    """Preflight refusals on real hardware: exit 2, file:line, nothing changed."""
    before = host_state(pfs)
    cases = {
        "beyond-totalvfs": f'node("h1"); sriov("{pfs[0]}", {{ vfs = 99 }})\n',
        "vf-beyond-numvfs": f'local h1 = node("h1"); h1:vf("{pfs[0]}", 0, {{ name = "v" }})\n',
        "virtual-pf": 'local h1 = node("h1"); sriov("lo", { vfs = 1 })\n',
    }
    sh("ip", "addr", "add", "198.18.99.1/24", "dev", pfs[1])
    cases["nic-with-address"] = f'local r1 = node("r1"); r1:nic("{pfs[1]}", {{ name = "wan0" }})\n'
    wrong = []
    try:
        for name, text in cases.items():
            p = labctl("up", write_lab(f"refuse-{name}", text), check=False)
            if p.returncode != 2 or ".lua:1: error:" not in p.stderr or "help:" not in p.stderr:
                wrong.append(f"{name}: exit {p.returncode}: {p.stderr.strip()}")
    finally:
        sh("ip", "addr", "del", "198.18.99.1/24", "dev", pfs[1])
    diff = differences(before, host_state(pfs))
    if wrong or diff:
        report("FAIL", "preflight-refusals", "; ".join(wrong + [f"changed: {d}" for d in diff]))
    else:
        report("PASS", "preflight-refusals", f"{', '.join(cases)}: each exit 2 with file:line and help, nothing changed")


def test_example_lab(pfs):
    before = host_state(pfs)
    lab = os.path.join(REPO, "labs/examples/real-nics.lua")
    p = labctl("run", lab, "--set", f"uplink={pfs[1]}", "--set", f"pf={pfs[0]}", "--out", os.path.join(OUT, "runs"), check=False, timeout=900)
    diff = differences(before, host_state(pfs))
    if p.returncode == 0 and not diff:
        report("PASS", "example-real-nics", f"labs/examples/real-nics.lua --set uplink={pfs[1]} --set pf={pfs[0]}: experiments passed; restored")
    else:
        report("FAIL", "example-real-nics", f"exit {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}; not restored: {diff}")


def test_part5_kernel(pfs):
    doctor = labctl("doctor", "--json", check=False).stdout
    esp = next((f for f in json.loads(doctor or "[]") if f.get("check") == "kernel ESP (XFRM)"), {})
    if not esp.get("ok"):
        report("FAIL", "part5-kernel-esp", f"the guest kernel has no ESP: {esp}")
        return
    p = labctl("run", os.path.join(REPO, "labs/part5.lua"), "--set", "backend=kernel", "--out", os.path.join(OUT, "part5"), check=False, timeout=1200)
    with open(os.path.join(OUT, "part5.log"), "w") as f:
        f.write(p.stdout + "\n" + p.stderr)
    try:
        with open(os.path.join(OUT, "part5", "results.json")) as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        report("FAIL", "part5-kernel-esp", f"exit {p.returncode}, no results.json ({e}): {p.stderr[-1500:]}")
        return
    # throughput compares two 1-second TCP flows: under software emulation
    # the numbers are the emulator's, not the kernel's; it is reported apart.
    timed = {"throughput"}
    failed = {r["name"]: r["error"] or json.dumps(r["failed"]) for r in results if r["failed"] or r["error"]}
    kernel = "backend: kernel" in p.stdout
    others = [r["name"] for r in results if r["name"] not in timed]
    bad = {n: e for n, e in failed.items() if n not in timed}
    if bad or not kernel or len(others) < 4:
        report("FAIL", "part5-kernel-esp", f"exit {p.returncode}, kernel backend {kernel}, failed {bad}; see part5.log")
    else:
        report("PASS", "part5-kernel-esp", f"labs/part5.lua --set backend=kernel: {', '.join(others)} passed with the kernel's XFRM ESP (raw ESP on the wire, PMTU, tunnel down fails closed and comes back)")
    for name in sorted(timed):
        if name in failed:
            report("SKIP", f"part5-kernel-{name}", f"a timing comparison, meaningless under software emulation: {failed[name][:300]}")
        elif any(r["name"] == name for r in results):
            report("PASS", f"part5-kernel-{name}", "IPsec slower than plain TCP, as expected")


def cgroup2_mount():
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            return left.split()[4]
    return None


def test_cpu_limit(pfs):
    """node("h1", { cpu = "50%" }): the node's cgroup has cpu.max "50000
    100000" and a busy loop in it is throttled (cpu.stat nr_throttled > 0,
    which an unlimited cgroup never is); the cgroup goes with down."""
    mount = cgroup2_mount()
    if mount is None:
        os.makedirs("/sys/fs/cgroup", exist_ok=True)
        sh("mount", "-t", "cgroup2", "none", "/sys/fs/cgroup")
        mount = "/sys/fs/cgroup"
    if "cpu" not in open(os.path.join(mount, "cgroup.controllers")).read().split():
        report("SKIP", "cpu-limit", f"the guest's cgroup2 at {mount} has no cpu controller")
        return
    lab = write_lab("cpulimit", f"""
lab {{ name = "cpulimit" }}
local h1, h2 = node("h1", {{ cpu = "50%" }}), node("h2")
link(h1, h2, {{ "198.18.0.1/24", "198.18.0.2/24" }})
experiment("busy", function(x)
  local wall = x.h1:run{{ "sh", "-c", "s=$(date +%s%N); timeout 2 sh -c 'while :; do :; done'; e=$(date +%s%N); echo wall_usec $(( (e - s) / 1000 ))" }}
  x:snapshot("wall", wall.stdout)
  local stat = x.h1:run{{ "sh", "-c", "d=\\"$0$(sed -n 's/^0:://p' /proc/self/cgroup)\\"; cat \\"$d/cpu.stat\\"; echo cpu_max $(tr ' ' / < \\"$d/cpu.max\\")", "{mount}" }}
  x:snapshot("cpustat", stat.stdout)
end)
""")
    p = labctl("run", lab, "--out", os.path.join(OUT, "cpulimit"), check=False)
    words = p.stdout.split()
    usage = int(words[words.index("usage_usec") + 1]) if "usage_usec" in words else None
    wall = int(words[words.index("wall_usec") + 1]) if "wall_usec" in words else None
    left = os.path.exists(os.path.join(mount, "labctl", "cpulimit-h1"))
    throttled = int(words[words.index("nr_throttled") + 1]) if "nr_throttled" in words else 0
    cpu_max = words[words.index("cpu_max") + 1] if "cpu_max" in words else None
    # Under emulation the guest's CPU-time and wall clocks drift apart (one
    # run charged 2.69 s of CPU to a 2.49 s single-threaded loop), so usage
    # is reported, not judged: the kernel's own throttle count is the proof.
    allowed = "not judged"
    ok = usage is not None and wall and throttled > 0 and cpu_max == "50000/100000"
    if p.returncode == 0 and ok and not left:
        report("PASS", "cpu-limit", f"cpu.max {cpu_max}; a busy loop of {wall} us: {usage} us of CPU, throttled {throttled} times; cgroup removed by down")
    else:
        report("FAIL", "cpu-limit", f"exit {p.returncode}, usage_usec {usage} of wall {wall} (at most {allowed}), nr_throttled {throttled}, cpu.max {cpu_max}, cgroup left {left}: {p.stdout[-1500:]} {p.stderr[-800:]}")


def test_netem_impairments(pfs):
    """delay, jitter and corrupt through netem (refused on the CI kernel,
    which lacks sch_netem): netem under tbf, and a ping's RTT at least the delay."""
    sh("modprobe", "sch_netem", check=False)
    lab = write_lab("netem", """
lab { name = "netem", static_neighbours = true }
local h1, h2 = node("h1"), node("h2")
link(h1, h2, { "198.18.0.1/24", "198.18.0.2/24" })
h1:impair("eth0", { rate = "10mbit", delay = "20ms", jitter = "1ms", corrupt = "0.1%" })
experiment("delay", function(x)
  local p = x.h1:ping("198.18.0.2", { count = 5, interval = 0.05 })
  x:expect(p.received == 5, "all replies")
  x:expect(p.rtt_min_us >= 19000, "the RTT holds h1's 20 ms of delay: " .. p.rtt_min_us)
end)
""")
    up = labctl("up", lab, check=False)
    if up.returncode != 0:
        report("FAIL", "netem-impairments", f"up exited {up.returncode}: {up.stderr[-1500:]}")
        return
    try:
        qdiscs = json.loads(sh("tc", "-n", "netem-h1", "-j", "qdisc", "show", "dev", "eth0").stdout or "[]")
        kinds = sorted(q["kind"] for q in qdiscs)
    finally:
        labctl("down", "netem", check=False)
    run = labctl("run", lab, "--out", os.path.join(OUT, "netem"), check=False)
    if "netem" in kinds and "tbf" in kinds and run.returncode == 0:
        report("PASS", "netem-impairments", f"qdiscs {kinds} on h1:eth0; ping RTT at least the 20 ms delay")
    else:
        report("FAIL", "netem-impairments", f"qdiscs {kinds}; run exited {run.returncode}: {run.stdout[-1500:]} {run.stderr[-1500:]}")
VRF_VLAN_LAB = """
lab { name = "vv" }
local h1, r1, h2 = node("h1"), node("r1", { forwarding = true }), node("h2")
local sw = bridge("sw", { vlan_filtering = true })
link(h1, sw, {})
link(r1, sw, {})
sw:port("eth0", { vlans = { 10 } })
sw:port("eth1", { vlans = { 10 } })
h1:vlan("eth0", 10, { addresses = { "198.18.10.1/24" } })
r1:vlan("eth0", 10, { addresses = { "198.18.10.254/24" } })
link(r1, h2, { { "198.18.20.254/24" }, { "198.18.20.1/24" } })
r1:vrf("blue", { table = 10, interfaces = { "eth0.10", "eth1" } })
h2:vlan("eth0", 100, { protocol = "802.1ad" })
h2:vlan("eth0.100", 20, { addresses = { "198.18.30.1/24" } })
h1:route("default", "198.18.10.254")
h2:route("default", "198.18.20.254")

experiment("across", function(x)
  local p = x.h1:ping("198.18.20.1", { count = 2, interval = 0.1, timeout = 5 })
  x:expect_eq(p.received, 2, "h1 reaches h2 over VLAN 10 and through r1's VRF")
end)
"""


def in_node(lab, node, *argv):
    return sh("ip", "netns", "exec", f"{lab}-{node}", *argv)


def link_of(lab, node, ifname):
    return json.loads(in_node(lab, node, "ip", "-j", "-d", "link", "show", "dev", ifname).stdout)[0]


def test_vrf_vlan(pfs):
    """A VRF with a VLAN and a veth enslaved, an 802.1Q trunk through a
    VLAN-filtering bridge, and a QinQ stack: up, read back from the kernel,
    traffic across, down leaves nothing."""
    for module in ["vrf", "8021q", "bridge"]:
        sh("modprobe", module, check=False)
    before = host_state(pfs)
    lab = write_lab("vv", VRF_VLAN_LAB)
    problems = []
    up = labctl("up", lab, check=False)
    if up.returncode != 0:
        report("FAIL", "vrf-vlan", f"up exited {up.returncode}: {up.stderr[-1500:]}")
        labctl("down", "vv", check=False)
        return
    try:
        blue = link_of("vv", "r1", "blue")
        if blue.get("linkinfo", {}).get("info_kind") != "vrf" or blue["linkinfo"].get("info_data", {}).get("table") != 10:
            problems.append(f"blue is not a VRF on table 10: {blue.get('linkinfo')}")
        for ifname in ["eth0.10", "eth1"]:
            if link_of("vv", "r1", ifname).get("master") != "blue":
                problems.append(f"r1:{ifname} not enslaved to blue")
        vlan = link_of("vv", "h1", "eth0.10")["linkinfo"]
        if vlan.get("info_kind") != "vlan" or vlan["info_data"].get("id") != 10 or vlan["info_data"].get("protocol") != "802.1Q":
            problems.append(f"h1:eth0.10 is not VLAN 10 802.1Q: {vlan}")
        outer = link_of("vv", "h2", "eth0.100")["linkinfo"]["info_data"]
        inner = link_of("vv", "h2", "eth0.100.20")
        if outer.get("protocol") != "802.1ad" or outer.get("id") != 100:
            problems.append(f"h2:eth0.100 is not 802.1ad 100: {outer}")
        if inner["linkinfo"]["info_data"].get("id") != 20 or inner.get("link") != "eth0.100":
            problems.append(f"h2:eth0.100.20 is not VLAN 20 on eth0.100: {inner}")
        table = in_node("vv", "r1", "ip", "route", "show", "vrf", "blue").stdout
        if "198.18.20.0/24 dev eth1" not in table or "198.18.10.0/24 dev eth0.10" not in table:
            problems.append(f"VRF blue's table lacks the connected subnets: {table}")
        filtering = in_node("vv", "sw", "cat", "/sys/class/net/br0/bridge/vlan_filtering").stdout.strip()
        if filtering != "1":
            problems.append(f"sw does not filter VLANs: {filtering}")
        vlans = json.loads(in_node("vv", "sw", "bridge", "-j", "vlan", "show").stdout or "[]")
        ports = {p["ifname"]: sorted(v["vlan"] for v in p["vlans"]) for p in vlans}
        if ports.get("eth0") != [10] or ports.get("eth1") != [10]:
            problems.append(f"sw's trunk ports do not carry exactly VLAN 10: {ports}")
    finally:
        down = labctl("down", "vv", check=False)
    if down.returncode != 0:
        problems.append(f"down exited {down.returncode}: {down.stderr[-500:]}")
    run = labctl("run", lab, "--out", os.path.join(OUT, "vv"), check=False)
    if run.returncode != 0:
        problems.append(f"run exited {run.returncode}: {run.stdout[-1500:]} {run.stderr[-800:]}")
    diff = differences(before, host_state(pfs))
    if diff:
        problems.append(f"not restored: {diff}")
    if problems:
        report("FAIL", "vrf-vlan", "; ".join(problems))
    else:
        report("PASS", "vrf-vlan", "VRF blue (table 10) with eth0.10 and eth1 enslaved, an 802.1Q trunk through a VLAN-filtering bridge, QinQ 802.1ad 100 / 802.1Q 20; h1 reached h2 through the VRF; down left nothing")


TC_LAB = r"""
lab { name = "tcv" }
local h1, h2 = node("h1"), node("h2")
link(h1, h2, { "198.18.0.1/24", "198.18.0.2/24" })
local FILTERS = [[
set -e
tc qdisc add dev eth0 clsact
tc filter add dev eth0 ingress pref 10 protocol ip flower ip_proto udp dst_port 4242 action drop
tc filter add dev eth0 ingress pref 20 protocol ip matchall action pass
]]
experiment("gact", function(x)
  local r = x.h2:run{ "sh", "-c", FILTERS }
  x:expect(r.status == 0, "tc: " .. r.stderr)
  local moved = x:delta({ "h2:eth0:tc:ingress/10", "h2:eth0:tc:ingress/20" }, function()
    x.h1:send{ to = "198.18.0.2", dport = 4242, count = 5 }
    -- Echo replies come back only after h2 classified the requests, and the UDP went first.
    x.h1:ping("198.18.0.2", { count = 3, interval = 0.05 })
  end)
  local drop, pass = moved["h2:eth0:tc:ingress/10"], moved["h2:eth0:tc:ingress/20"]
  print(("flower drop: %d matched, %d dropped; matchall pass: %d"):format(drop.packets or 0, drop.drops or 0, pass.packets or 0))
  x:expect(drop.packets == 5 and drop.drops == 5, "flower's gact drop: 5 matched and dropped")
  -- The 3 echo requests and send's one path probe (UDP to port 9) pass pref 10 and match pref 20.
  x:expect(pass.packets == 4, "matchall's gact pass: 4 packets")
end)
"""


def test_tc_filter_counters(pfs):
    """tc filters of the classifiers and actions this machine's kernel lacks
    (flower, matchall, gact), read by `x:counters` with their drops."""
    for module in ["cls_flower", "cls_matchall", "act_gact", "sch_ingress"]:
        sh("modprobe", module, check=False)
    before = host_state(pfs)
    run = labctl("run", write_lab("tcv", TC_LAB), "--out", os.path.join(OUT, "tcv"), check=False)
    problems = []
    if run.returncode != 0:
        problems.append(f"run exited {run.returncode}: {run.stdout[-1500:]} {run.stderr[-800:]}")
    diff = differences(before, host_state(pfs))
    if diff:
        problems.append(f"not restored: {diff}")
    counted = [line for line in run.stderr.splitlines() if line.startswith("flower drop:")]
    if problems:
        report("FAIL", "tc-filter-counters", "; ".join(problems))
    else:
        report("PASS", "tc-filter-counters", f"{counted[0] if counted else run.stdout[-300:]}; down left nothing")


def main():
    print(f"guest kernel {os.uname().release}", flush=True)
    pfs = setup()
    if len(pfs) < 2:
        report("FAIL", "setup", f"two igb NICs expected, found {pfs}")
        return
    decorate_nic(pfs[1])
    print(f"PFs {pfs}, sriov_totalvfs {[open(f'/sys/class/net/{p}/device/sriov_totalvfs').read().strip() for p in pfs]}", flush=True)
    only = ONLY
    tests = [
        ("sriov-vf-settings", lambda: test_vf_settings(pfs)),
        ("sriov-vf-link-state", lambda: test_optional_setting(pfs, "sriov-vf-link-state", 'link_state = "disable"',
                                                               lambda v: None if v["link_state"] == "disable" else f"link_state {v['link_state']}")),
        ("sriov-vf-tx-rate", lambda: test_optional_setting(pfs, "sriov-vf-tx-rate", "max_tx_rate = 100",
                                                            lambda v: None if v["max_tx_rate"] == 100 else f"max_tx_rate {v['max_tx_rate']}")),
        ("preflight-refusals", lambda: test_refusals(pfs)),
        ("sriov-vf-to-vf-traffic", lambda: test_vf_traffic(pfs)),
        ("nic-claim-and-vfs", lambda: test_nic_claim(pfs)),
        ("kill9-netns-delete-down", lambda: test_kill_and_delete(pfs)),
        ("kill9-campaign", lambda: test_kill_campaign(pfs, KILL_RUNS)),
        ("example-real-nics", lambda: test_example_lab(pfs)),
        ("part5-kernel-esp", lambda: test_part5_kernel(pfs)),
        ("cpu-limit", lambda: test_cpu_limit(pfs)),
        ("netem-impairments", lambda: test_netem_impairments(pfs)),
        ("vrf-vlan", lambda: test_vrf_vlan(pfs)),
        ("tc-filter-counters", lambda: test_tc_filter_counters(pfs)),
    ]
    for name, test in tests:
        if only and name not in only.split(","):
            continue
        started = time.time()
        try:
            test()
        except Exception:
            report("FAIL", name, traceback.format_exc().replace("\n", " | "))
        print(f"  ({name}: {time.time() - started:.0f}s)", flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        RESULTS.write("DONE\n")
        RESULTS.close()
