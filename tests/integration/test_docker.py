"""docker/: what can be checked without a Docker engine (none runs in CI).

- `docker-compose config` (Debian's docker-compose, no daemon) accepts
  docker/compose.yaml;
- every nginx-rtmp service's config, rendered by the image's own entrypoint
  with the service's environment, passes `nginx -t` with the Debian rtmp
  module;
- every rtmplb config in docker/ passes `rtmplb -t` (its token, state and
  log paths pointed at a temp dir, as the volumes would hold them);
- compose services, addresses, ports and the configs agree: every rtmplb node
  is a compose service at that fixed IP whose own config listens on that port
  and serves the stats URL rtmplb polls; edges' on_play and SRS hooks call
  rtmplb's admin address with node names rtmplb knows, in the right pool;
  SRS coworkers and the SRS edge's origins are the SRS origins; published
  ports are rtmplb's listeners; named volumes hold the state file and logs;
- the Dockerfiles: bookworm-slim, non-root USER, HEALTHCHECK against the
  admin API, every apt package known to Debian, the SRS image pinned."""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

import harness

SRC = None


def src(*p):
    return os.path.join(harness.ARGS.source, *p)


def ip_port(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


class Docker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rtmplb-docker-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        if not shutil.which("docker-compose"):
            raise AssertionError("docker-compose is missing: scripts/deps.sh test installs it")
        r = subprocess.run(["docker-compose", "-f", src("docker", "compose.yaml"), "config"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("docker-compose config:\n" + r.stdout + r.stderr)
        cls.compose = yaml.safe_load(r.stdout)
        cls.services = cls.compose["services"]
        with open(src("docker", "rtmplb", "rtmplb.yaml")) as f:
            cls.lb = yaml.safe_load(f)
        cls.lb_ip = cls.ip("rtmplb")
        cls.nodes = {n["name"]: (pool, n) for pool, p in cls.lb["pools"].items() for n in p["nodes"]}

    @classmethod
    def ip(cls, service):
        return cls.services[service]["networks"]["fleet"]["ipv4_address"]

    @classmethod
    def service_at(cls, ip):
        hits = [s for s in cls.services if cls.ip(s) == ip]
        return hits[0] if len(hits) == 1 else None

    def render_nginx(self, service):
        env = self.services[service]["environment"]
        out = os.path.join(self.tmp, service + ".conf")
        prefix = os.path.join(self.tmp, service)
        os.makedirs(prefix, exist_ok=True)
        r = subprocess.run(["sh", src("docker", "nginx-rtmp", "entrypoint.sh"), "--render", out],
                           env=dict(os.environ, NGINX_RTMP_CONF_DIR=src("docker", "nginx-rtmp"),
                                    NGINX_RTMP_PREFIX=prefix, **env),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            return out, prefix, f.read()

    def nginx_services(self):
        return [s for s, d in self.services.items()
                if d.get("build", {}).get("dockerfile") == "docker/nginx-rtmp/Dockerfile"]

    def srs_services(self):
        return [s for s, d in self.services.items() if d.get("image", "").startswith("ossrs/srs:")]

    def srs_conf(self, service):
        vols = self.services[service]["volumes"]
        host = [v["source"] if isinstance(v, dict) else v.split(":")[0] for v in vols]
        self.assertEqual(len(host), 1, vols)
        with open(host[0]) as f:
            return f.read()

    def test_nginx_configs_pass_nginx_t(self):
        svcs = self.nginx_services()
        self.assertEqual(sorted(svcs), ["edge-1", "edge-2", "origin-a", "origin-b"])
        for s in svcs:
            with self.subTest(service=s):
                conf, prefix, _ = self.render_nginx(s)
                r = subprocess.run(["nginx", "-t", "-p", prefix, "-c", conf], capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("test is successful", r.stderr)
        # A bad NODE_NAME is refused, not written into a URL.
        r = subprocess.run(["sh", src("docker", "nginx-rtmp", "entrypoint.sh"), "--render",
                            os.path.join(self.tmp, "bad.conf")],
                           env=dict(os.environ, ROLE="edge", NODE_NAME="x;y",
                                    NGINX_RTMP_CONF_DIR=src("docker", "nginx-rtmp")),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)

    def test_rtmplb_configs_pass_rtmplb_t(self):
        files = sorted(glob.glob(src("docker", "**", "*.yaml"), recursive=True))
        files = [f for f in files if os.path.basename(f) != "compose.yaml"]
        self.assertTrue(files)
        for path in files:
            with self.subTest(path=path):
                with open(path) as f:
                    text = f.read()
                token = os.path.join(self.tmp, "admin.token")
                with open(os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as t:
                    t.write("t0ken\n")
                text = re.sub(r"token_file: \S+", "token_file: " + token, text)
                text = re.sub(r"state_file: \S+", "state_file: " + os.path.join(self.tmp, "ovr.json"), text)
                text = re.sub(r"access_log: /\S+", "access_log: " + os.path.join(self.tmp, "access.log"), text)
                check = os.path.join(self.tmp, "check-" + os.path.basename(path))
                with open(check, "w") as f:
                    f.write(text)
                r = subprocess.run([harness.ARGS.rtmplb, "-t", "-c", check], capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_rtmplb_nodes_are_compose_services_that_serve_there(self):
        self.assertEqual(len(self.nodes), 7)
        for name, (pool, node) in self.nodes.items():
            with self.subTest(node=name):
                ip, port = ip_port(node["address"])
                svc = self.service_at(ip)
                self.assertEqual(svc, name, "node %s at %s: service %s" % (name, ip, svc))
                stats = re.fullmatch(r"http://([\d.]+):(\d+)(/.*)", node["stats"]["url"])
                self.assertEqual(stats.group(1), ip)
                if svc in self.nginx_services():
                    _, _, conf = self.render_nginx(svc)
                    rtmp = conf[conf.index("rtmp {"):conf.index("http {")]
                    http = conf[conf.index("http {"):]
                    self.assertRegex(rtmp, r"listen %d;" % port)
                    self.assertRegex(http, r"listen %s;" % stats.group(2))
                    self.assertIn("location %s " % stats.group(3), http)
                    self.assertEqual(node["stats"]["kind"], "nginx-rtmp")
                    role = self.services[svc]["environment"]["ROLE"]
                    self.assertEqual(role, "edge" if pool == "edges" else "origin")
                else:
                    self.assertIn(svc, self.srs_services())
                    conf = self.srs_conf(svc)
                    self.assertRegex(conf, r"(?m)^listen %d;" % port)
                    self.assertRegex(conf, r"http_api \{[^}]*listen %s;" % stats.group(2))
                    self.assertEqual(stats.group(3), "/api/v1/streams")
                    self.assertEqual(node["stats"]["kind"], "srs")

    def test_nodes_call_rtmplb_with_names_it_knows(self):
        admin_ip, admin_port = ip_port(self.lb["admin"]["address"])
        self.assertEqual(admin_ip, "0.0.0.0")
        listeners = [l["name"] for l in self.lb["listeners"]]
        for svc in self.nginx_services():
            _, _, conf = self.render_nginx(svc)
            calls = re.findall(r"on_play http://([\d.]+):(\d+)/nginx/on_play\?node=([\w-]+)&listener=(\w+);", conf)
            if self.services[svc]["environment"]["ROLE"] == "edge":
                self.assertEqual(calls, [(self.lb_ip, str(admin_port), svc, listeners[0])], svc)
                self.assertEqual(self.nodes[svc][0], "edges")
                # The route the edge's on_play takes serves plays from the origins.
                route = next(r for r in self.lb["routes"]
                             if r["match"].get("listener") == listeners[0]
                             and r["match"].get("role") == "play" and "app" not in r["match"])
                self.assertEqual((route["pool"], route["policy"]), ("origins", "stream_location"))
            else:
                self.assertEqual(calls, [], svc)
        srs_origins = [n["address"] for n in self.lb["pools"]["srs-origins"]["nodes"]]
        for svc in self.srs_services():
            conf = self.srs_conf(svc)
            hooks = re.findall(r"(on_\w+) http://([\d.]+):(\d+)/api/v1/hooks/srs\?node=([\w-]+);", conf)
            if self.nodes[svc][0] == "srs-origins":
                self.assertEqual(sorted(h[0] for h in hooks),
                                 ["on_play", "on_publish", "on_stop", "on_unpublish"])
                self.assertEqual({h[1:] for h in hooks}, {(self.lb_ip, str(admin_port), svc)})
                others = {"%s:1985" % ip_port(a)[0] for a in srs_origins} - {"%s:1985" % self.ip(svc)}
                cow = re.search(r"coworkers ([^;]+);", conf).group(1).split()
                self.assertEqual(set(cow), others)
                self.assertRegex(conf, r"origin_cluster on;")
            else:
                self.assertEqual(self.nodes[svc][0], "srs-edges")
                self.assertRegex(conf, r"mode remote;")
                origins = re.search(r"\borigin ([^;]+);", conf).group(1).split()
                self.assertEqual(sorted(origins), sorted(srs_origins))

    def test_ports_volumes_and_images(self):
        lb = self.services["rtmplb"]
        published = {}
        for p in lb["ports"]:  # "HOST_IP:PUBLISHED:TARGET" (compose 1.x) or the long form
            if isinstance(p, str):
                host_ip, pub, target = p.split("/")[0].split(":")
                published[int(target)] = (host_ip, int(pub))
            else:
                published[int(p["target"])] = (p.get("host_ip"), int(p["published"]))
        want = {ip_port(l["address"])[1] for l in self.lb["listeners"]} | {ip_port(self.lb["admin"]["address"])[1]}
        self.assertEqual(set(published), want)
        for target, (host_ip, _) in published.items():
            self.assertEqual(host_ip, "127.0.0.1", "port %d is published on loopback only" % target)
        mounts = {}
        for v in lb["volumes"]:  # "SOURCE:TARGET[:MODE]" (compose 1.x) or the long form
            if isinstance(v, str):
                source, target = v.split(":")[:2]
                v = {"source": source, "target": target,
                     "type": "bind" if source.startswith(("/", ".")) else "volume"}
            mounts[v["target"]] = v
        for key in (self.lb["admin"]["token_file"], self.lb["admin"]["state_file"], self.lb["log"]["access_log"]):
            d = os.path.dirname(key)
            self.assertIn(d, mounts, key)
            self.assertEqual(mounts[d]["type"], "volume")
            self.assertIn(mounts[d]["source"], self.compose["volumes"])
        self.assertEqual(os.path.realpath(mounts["/etc/rtmplb/rtmplb.yaml"]["source"]),
                         os.path.realpath(src("docker", "rtmplb", "rtmplb.yaml")))
        subnet = self.compose["networks"]["fleet"]["ipam"]["config"][0]["subnet"]
        self.assertEqual(subnet, "172.28.0.0/24")
        for s in self.services:
            self.assertTrue(self.ip(s).startswith("172.28.0."), s)
        self.assertEqual(len({self.ip(s) for s in self.services}), len(self.services))
        for s in self.srs_services():
            self.assertRegex(self.services[s]["image"], r"^ossrs/srs:v\d+\.\d+\.\d+$", "pinned")

    def test_dockerfiles(self):
        files = sorted(glob.glob(src("docker", "*", "Dockerfile")))
        self.assertEqual([os.path.basename(os.path.dirname(f)) for f in files], ["nginx-rtmp", "rtmplb"])
        for path in files:
            with self.subTest(path=path):
                with open(path) as f:
                    text = f.read()
                joined = re.sub(r"\\\n", " ", text)
                froms = re.findall(r"(?m)^FROM (\S+)", text)
                self.assertTrue(froms and all(f == "debian:bookworm-slim" for f in froms), froms)
                users = re.findall(r"(?m)^USER (\S+)", text)
                self.assertTrue(users and users[-1] not in ("root", "0"), users)
                self.assertRegex(text, r"(?m)^HEALTHCHECK ")
                for m in re.finditer(r"(?m)^COPY (?!--from)(.+)$", text):
                    for srcpath in m.group(1).split()[:-1]:
                        self.assertTrue(os.path.exists(src(srcpath.rstrip("/"))) or srcpath == ".", srcpath)
                pkgs = set()
                for line in re.findall(r"apt-get install[^&]*", joined):
                    pkgs.update(w for w in line.split()[2:] if not w.startswith("-"))
                self.assertTrue(pkgs)
                # One apt-cache call for all (each costs seconds on a busy machine).
                r = subprocess.run(["apt-cache", "show", "--no-all-versions"] + sorted(pkgs),
                                   capture_output=True, text=True, timeout=120)
                known = set(re.findall(r"(?m)^Package: (\S+)", r.stdout))
                self.assertEqual(sorted(pkgs - known), [], "%s: not Debian packages" % path)
        with open(src("docker", "rtmplb", "Dockerfile")) as f:
            text = re.sub(r"\\\n", " ", f.read())
        hc = re.search(r"HEALTHCHECK .*", text).group(0)
        self.assertIn("/api/v1/process", hc)
        self.assertIn("Authorization: Bearer", hc)
        env = dict(re.findall(r"(RTMPLB_\w+)=(\S+)", text))
        self.assertEqual(env["RTMPLB_TOKEN_FILE"], self.lb["admin"]["token_file"])
        self.assertEqual(ip_port(env["RTMPLB_ADMIN"])[1], ip_port(self.lb["admin"]["address"])[1])
        # The runtime stage copies what `cmake --install` with prefix /usr puts in /stage.
        stage = os.path.join(self.tmp, "stage")
        build = os.path.dirname(os.path.abspath(harness.ARGS.rtmplb))
        r = subprocess.run(["cmake", "--install", build, "--prefix", "/usr"], capture_output=True,
                           text=True, timeout=120, env=dict(os.environ, DESTDIR=stage))
        self.assertEqual(r.returncode, 0, r.stderr)
        for m in re.finditer(r"COPY --from=build /stage(\S+)", text):
            self.assertTrue(os.path.exists(stage + m.group(1)), m.group(1))


if __name__ == "__main__":
    harness.main()
