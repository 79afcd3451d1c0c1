# Helpers shared by the benchmark scripts (sourced, not run).

# A loopback TCP port nobody listens on now.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 5 s for something to listen on 127.0.0.1:$1.
wait_port() { for ((i = 0; i < 100; i++)); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
