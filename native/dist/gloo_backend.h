// Gloo (CPU, TCP transport) process group. Built when CMake finds Gloo
// (Debian/Ubuntu: `apt-get install libgloo-dev`); otherwise make_gloo_backend
// throws an error that says how to enable it.
//
// Rendezvous: the ranks exchange their Gloo transport addresses through our
// own TCP store (src/dist/store.ts on MASTER_ADDR:MASTER_PORT) via a native
// client (store_client.h) that implements gloo::rendezvous::Store, with all
// keys under `prefix`. One store serves the JS side (barriers, NCCL ids,
// liveness) and Gloo, and no shared filesystem is needed across nodes.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "dist/backend.h"

namespace ds::dist {

struct GlooOptions {
  std::string store_host;  // MASTER_ADDR
  int store_port = 0;      // the store's port
  std::string prefix;      // key namespace of this process group in the store
  int rank = 0, size = 1;
  std::chrono::milliseconds timeout{1800000};  // rendezvous and per-collective timeout
  std::string hostname;    // address this rank's Gloo device binds to ("" = resolve own host name)
  std::string iface;       // network interface instead of hostname (GLOO_SOCKET_IFNAME)
};

bool gloo_compiled();
// Blocks until every rank has joined (or throws after the timeout naming the
// ranks that did not). Call it off the JS thread when rank 0 hosts the store.
std::shared_ptr<Backend> make_gloo_backend(const GlooOptions& opts);

}  // namespace ds::dist
