# Sourced by the benchmarks that start servers on fixed ports.

# Stops the benchmark when something already listens on the port: its answers would be taken
# for those of the server the benchmark starts (a collector of a run just stopped may still be
# draining).
port_free() { # port
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "benches: something already listens on port $1: stop it, or choose other ports" >&2
    exit 1
  fi
}

# The pixel request every server is loaded with: a page with a campaign tag, a referrer, a title.
pixel_path() { # site
  echo "/p.gif?site=$1&url=https%3A%2F%2Fshop.example.com%2Fshop%2Fitem-7%3Futm_source%3Dnewsletter&ref=https%3A%2F%2Fwww.google.com%2F&title=Item%207"
}

# `nginx_pixel_conf DIR PORT` writes DIR/nginx.conf, one worker answering `/p.gif` with `empty_gif`, an access log and the
# same Set-Cookie (a fresh random id per hit, from $request_id) and Cache-Control headers as the
# collector's pixel. NGINX_MAIN adds main-context directives (`master_process off;` to run the
# worker in the foreground process, under a profiler).
nginx_pixel_conf() { # dir port
  mkdir -p "$1/logs"
  cat >"$1/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
${NGINX_MAIN:-}
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log $1/logs/access.log combined buffer=64k flush=1s;
  client_body_temp_path $1/body;
  keepalive_requests 100000000;
  keepalive_timeout 65s;
  server {
    listen 127.0.0.1:$2;
    location = /p.gif {
      empty_gif;
      add_header Cache-Control "no-store, max-age=0";
      add_header Set-Cookie "ff_id=\$request_id; Path=/; Max-Age=34128000; HttpOnly; SameSite=Lax";
    }
  }
}
NGINX
}
