"""rtmplb -t: every shipped example is accepted; every invalid example is
rejected with exit 2 and the exact file:line:col message written in its
first line. Also the command line's own errors, and docs/CONFIG.md against
the schema compiled into rtmplb (--dump-schema), so the reference cannot
drift from the code."""

import glob
import os
import re
import subprocess
import unittest

import yaml

import harness


def run(*args):
    return subprocess.run([harness.ARGS.rtmplb, *args], capture_output=True, text=True, timeout=30)


class ConfigCheck(unittest.TestCase):
    def examples(self, pattern):
        files = sorted(glob.glob(os.path.join(harness.ARGS.source, "conf", "examples", pattern)))
        self.assertTrue(files, "no files match " + pattern)
        return files

    def test_examples_are_valid(self):
        tmp = harness.Fleet()
        self.addCleanup(tmp.stop)
        for path in self.examples("*.yaml"):
            with self.subTest(path=path):
                text = open(path).read()
                if "geo:" in text:
                    # No real GeoIP database ships: point it at a test one.
                    db = os.path.join(tmp.dir, "geo.mmdb")
                    subprocess.run(["perl", os.path.join(harness.ARGS.source, "tests", "geo",
                                                         "make_test_mmdb.pl"), db], check=True)
                    text = text.replace("/var/lib/GeoIP/GeoLite2-City.mmdb", db)
                if "token_file:" in text:
                    # The token file must exist and not be world-readable.
                    token = os.path.join(tmp.dir, "admin.token")
                    with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                        f.write("s3cret-token\n")
                    text = re.sub(r"token_file: \S+", "token_file: " + token, text)
                if "hooks_secret_file:" in text:
                    secret = os.path.join(tmp.dir, "hooks.secret")
                    with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                        f.write("h00k-secret\n")
                    text = re.sub(r"hooks_secret_file: \S+", "hooks_secret_file: " + secret, text)
                if "/etc/rtmplb/live.example.com.pem" in text:
                    # No real certificate ships: make one (it is its own CA).
                    cert = os.path.join(tmp.dir, "live.pem")
                    key = os.path.join(tmp.dir, "live.key")
                    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
                                    cert, "-days", "30", "-subj", "/CN=live.example.com"],
                                   check=True, capture_output=True)
                    text = (text.replace("/etc/rtmplb/live.example.com.pem", cert)
                            .replace("/etc/rtmplb/live.example.com.key", key)
                            .replace("/etc/rtmplb/origin-ca.pem", cert))
                if text != open(path).read():
                    path = os.path.join(tmp.dir, os.path.basename(path))
                    with open(path, "w") as f:
                        f.write(text)
                r = run("-t", "-c", path)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("configuration is valid", r.stderr)

    def test_invalid_examples_fail_at_the_right_place(self):
        for path in self.examples("invalid/*.yaml"):
            with self.subTest(path=path):
                with open(path) as f:
                    first = f.readline()
                self.assertTrue(first.startswith("# expect: "), path)
                want = first[len("# expect: "):].strip().replace("{file}", path)
                r = run("-t", "-c", path)
                self.assertEqual(r.returncode, 2, r.stderr)
                lines = r.stderr.splitlines()
                self.assertEqual(lines[0], want)
                self.assertEqual(lines[-1], "rtmplb: %s: configuration is invalid" % path)

    def test_invalid_config_refuses_to_start(self):
        path = self.examples("invalid/bad-weight.yaml")[0]
        r = run("-c", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn(":10:17: pools.origins.nodes[0].weight: must be 1..1000 (got 0)", r.stderr)

    def test_missing_file(self):
        r = run("-t", "-c", "/nonexistent/rtmplb.yaml")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent/rtmplb.yaml: cannot open: No such file or directory", r.stderr)

    def test_usage_and_version(self):
        r = run()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: rtmplb -c FILE", r.stderr)
        r = run("-x")
        self.assertEqual(r.returncode, 2)
        r = run("-V")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^rtmplb \d+\.\d+\.\d+\n")
        self.assertIn("llhttp", r.stdout)

    def test_long_options(self):
        # --help and --version are -h and -V (they were "invalid option -- '-'", exit 2).
        for long_, short in (("--help", "-h"), ("--version", "-V")):
            with self.subTest(option=long_):
                a, b = run(long_), run(short)
                self.assertEqual(a.returncode, 0, a.stderr)
                self.assertEqual(a.stderr, "")
                self.assertEqual(a.stdout, b.stdout)
        self.assertIn("usage: rtmplb -c FILE", run("--help").stdout)
        self.assertRegex(run("--version").stdout, r"^rtmplb \d+\.\d+\.\d+\n")
        r = run("--no-such-option")
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: rtmplb -c FILE", r.stderr)

    def test_busy_port_is_a_clear_start_error(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        fleet = harness.Fleet()
        try:
            cfg = os.path.join(fleet.dir, "c.yaml")
            with open(cfg, "w") as f:
                f.write("listeners: [{name: rtmp, address: 127.0.0.1:%d, mode: tcp}]\n"
                        "pools: {p: {nodes: [{name: a, address: 127.0.0.1:1}]}}\n"
                        "routes: [{name: r, pool: p}]\n" % port)
            r = run("-c", cfg)
            self.assertEqual(r.returncode, 1)
            self.assertIn("listener rtmp: cannot listen on 127.0.0.1:%d: Address already in use" % port,
                          r.stderr)
            # A second rtmplb on a port the first one holds is refused too
            # (SO_REUSEPORT would otherwise let it take half the traffic).
            s.close()
            fleet.rtmplb(open(cfg).read(), name="first", wait_ports=[port])
            r = run("-c", cfg)
            self.assertEqual(r.returncode, 1)
            self.assertIn("Address already in use (is another rtmplb running?)", r.stderr)
        finally:
            s.close()
            fleet.stop()



def schema():
    """{dotted.path: (type, default)} from the binary's own schema table."""
    r = run("--dump-schema")
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        key, kind, default = line.split("\t")
        out[key] = (kind, default)
    assert len(out) > 50, "--dump-schema printed %d keys" % len(out)
    return out


def reference_rows(path):
    """{key: (default, example)} from the key table of docs/CONFIG.md."""
    rows = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("| `"):
                continue
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            key = cells[0].strip("`")
            assert key not in rows, "%s is documented twice" % key
            rows[key] = (cells[2].strip("`"), cells[3].strip("`"))
    return rows


def yaml_keys(node, path, kinds, out):
    """Dotted schema paths that a parsed YAML document sets."""
    if isinstance(node, dict):
        for k, v in node.items():
            if path and kinds.get(path) == "map":
                sub = path + ".*"  # a name, not a key
            else:
                sub = (path + "." if path else "") + str(k)
                out.add(sub)
            yaml_keys(v, sub, kinds, out)
    elif isinstance(node, list) and kinds.get(path) == "list":
        for item in node:
            if isinstance(item, dict):
                yaml_keys(item, path + "[]", kinds, out)
    return out


class ConfigReference(unittest.TestCase):
    def setUp(self):
        self.schema = schema()
        self.doc = os.path.join(harness.ARGS.source, "docs", "CONFIG.md")
        self.rows = reference_rows(self.doc)

    def test_every_key_is_documented_with_its_default(self):
        for key, (kind, default) in self.schema.items():
            if key not in self.rows:
                continue
            with self.subTest(key=key):
                got, example = self.rows[key]
                self.assertEqual(got, default, "docs/CONFIG.md gives %s the wrong default" % key)
                self.assertTrue(example, "%s has no example" % key)
        missing = sorted(set(self.schema) - set(self.rows))
        self.assertEqual(missing, [], "keys of the schema missing from docs/CONFIG.md")

    def test_no_documented_key_is_unknown(self):
        unknown = sorted(set(self.rows) - set(self.schema))
        self.assertEqual(unknown, [], "docs/CONFIG.md documents keys rtmplb does not know")

    def test_readme_points_to_the_reference(self):
        with open(os.path.join(harness.ARGS.source, "README.md")) as f:
            readme = f.read()
        self.assertIn("docs/CONFIG.md", readme)
        self.assertNotIn("../shared/", readme)

    def test_examples_claiming_every_setting_list_every_setting(self):
        kinds = {k: v[0] for k, v in self.schema.items()}
        settable = {k for k, (kind, _) in self.schema.items() if kind != "unsupported"}
        claimed = 0
        for path in sorted(glob.glob(os.path.join(harness.ARGS.source, "conf", "examples",
                                                  "*.yaml"))):
            with open(path) as f:
                text = f.read()
            header = "".join(l for l in text.splitlines(True) if l.startswith("#"))
            if not re.search(r"every setting", header, re.I):
                continue
            claimed += 1
            with self.subTest(path=path):
                keys = yaml_keys(yaml.safe_load(text), "", kinds, set())
                self.assertEqual(sorted(settable - keys), [],
                                 "%s claims every setting but lacks these" % path)
                self.assertEqual(sorted(keys - set(self.schema)), [])
        # The reference names one; test_examples_are_valid runs -t on it.
        self.assertGreaterEqual(claimed, 1)


if __name__ == "__main__":
    harness.main()
