"""A small HTTP/1.1 origin for the http-listener tests, in a thread:
- GET /APP/NAME.flv: an FLV file made by ffmpeg, relayed as live HTTP-FLV
  is served (no Content-Length: the answer ends when the origin closes;
  ?chunked=1 sends it chunked instead), paced so it lasts a while;
- any other path: a short text body naming this origin and the path, with
  Content-Length and keep-alive (a playlist or segment stand-in).
Every request is recorded (path and headers) for the test to assert on."""

import http.server
import socketserver
import threading
import time

from harness import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        o = self.server.origin
        with o.lock:
            # Repeated list headers (X-Forwarded-For) read as one list.
            hdrs = {k.lower(): ", ".join(self.headers.get_all(k)) for k in self.headers.keys()}
            o.requests.append((self.path, hdrs, self.client_address))
        path = self.path.split("?", 1)[0]
        if path.endswith(".flv") and o.flv:
            chunked = "chunked=1" in self.path
            self.send_response(200)
            self.send_header("Content-Type", "video/x-flv")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            step = max(1, len(o.flv) // 50)
            try:
                for i in range(0, len(o.flv), step):
                    part = o.flv[i:i + step]
                    if chunked:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    else:
                        self.wfile.write(part)
                    self.wfile.flush()
                    time.sleep(o.flv_pace)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            return
        body = ("%s %s\n" % (o.name, path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpOrigin:
    def __init__(self, name, flv=None, flv_pace=0.1, port=None):
        self.name = name
        self.port = port or free_port()
        self.flv = flv
        self.flv_pace = flv_pace
        self.lock = threading.Lock()
        self.requests = []
        self.srv = _Server(("127.0.0.1", self.port), _Handler)
        self.srv.origin = self
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def paths(self):
        with self.lock:
            return [r[0] for r in self.requests]

    def headers(self):
        with self.lock:
            return [r[1] for r in self.requests]

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(5)
