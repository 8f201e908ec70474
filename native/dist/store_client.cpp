#include "dist/store_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace ds::dist {
namespace {

constexpr uint8_t kSet = 1, kGet = 2, kWait = 4;
constexpr uint8_t kOk = 0, kTimeout = 1;

// One non-blocking connect attempt bounded by `ms`; returns the fd or -1 (errno kept in *err).
int try_connect(const addrinfo* ai, int ms, int* err) {
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) { *err = errno; return -1; }
  int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    rc = ::poll(&p, 1, ms);
    if (rc == 1) {
      int so = 0;
      socklen_t len = sizeof so;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
      rc = so == 0 ? 0 : -1;
      if (so) errno = so;
    } else {
      if (rc == 0) errno = ETIMEDOUT;
      rc = -1;
    }
  }
  if (rc != 0) { *err = errno; ::close(fd); return -1; }
  // Back to blocking mode for the simple request/reply exchange.
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}
uint32_t get_u32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

}  // namespace

StoreClient::StoreClient(const std::string& host, int port, std::chrono::milliseconds connect_timeout) {
  address_ = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int g = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  DS_CHECK(g == 0, "rendezvous store: cannot resolve master address '", host, "' (", gai_strerror(g),
           "); check MASTER_ADDR");
  auto deadline = std::chrono::steady_clock::now() + connect_timeout;
  int err = 0;
  while (fd_ < 0) {
    for (addrinfo* ai = res; ai && fd_ < 0; ai = ai->ai_next) fd_ = try_connect(ai, 1000, &err);
    if (fd_ >= 0 || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::freeaddrinfo(res);
  DS_CHECK(fd_ >= 0, "rendezvous store: cannot connect to the master at ", address_, " within ",
           connect_timeout.count(), " ms (", std::strerror(err),
           "); check MASTER_ADDR / MASTER_PORT and that rank 0 (or the launcher) is running");
}

StoreClient::~StoreClient() {
  if (fd_ >= 0) ::close(fd_);
}

void StoreClient::send_all(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t k = ::send(fd_, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    DS_CHECK(k > 0, "rendezvous store at ", address_, ": connection lost while sending (", std::strerror(errno),
             "); the master process (rank 0 or the launcher) has probably exited");
    c += k;
    n -= size_t(k);
  }
}

void StoreClient::recv_all(void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t k = ::recv(fd_, c, n, 0);
    if (k < 0 && errno == EINTR) continue;
    DS_CHECK(k > 0, "rendezvous store at ", address_, ": connection lost while waiting for a reply (",
             k == 0 ? "closed by the master" : std::strerror(errno),
             "); the master process (rank 0 or the launcher) has probably exited");
    c += k;
    n -= size_t(k);
  }
}

StoreClient::Reply StoreClient::request(uint8_t op, uint32_t timeout_ms, const std::vector<std::string>& fields) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string body;
  body.push_back(char(op));
  put_u32(body, timeout_ms);
  put_u32(body, uint32_t(fields.size()));
  for (auto& f : fields) {
    put_u32(body, uint32_t(f.size()));
    body += f;
  }
  std::string frame;
  put_u32(frame, uint32_t(body.size()));
  frame += body;
  send_all(frame.data(), frame.size());

  unsigned char hdr[4];
  recv_all(hdr, 4);
  std::vector<unsigned char> buf(get_u32(hdr));
  DS_CHECK(buf.size() >= 5, "rendezvous store at ", address_, ": malformed reply (is something else listening on that port?)");
  recv_all(buf.data(), buf.size());
  Reply r;
  r.status = buf[0];
  uint32_t n = get_u32(&buf[1]);
  size_t pos = 5;
  for (uint32_t i = 0; i < n; ++i) {
    DS_CHECK(pos + 4 <= buf.size(), "rendezvous store: truncated reply");
    uint32_t len = get_u32(&buf[pos]);
    pos += 4;
    DS_CHECK(pos + len <= buf.size(), "rendezvous store: truncated reply");
    r.fields.emplace_back(reinterpret_cast<const char*>(&buf[pos]), len);
    pos += len;
  }
  return r;
}

namespace {
std::string join_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (auto& k : keys) s += (s.empty() ? "" : ", ") + k;
  return s;
}
uint32_t clamp_ms(std::chrono::milliseconds t) {
  return uint32_t(std::max<int64_t>(1, std::min<int64_t>(t.count(), 0x7fffffff)));
}
}  // namespace

void StoreClient::set(const std::string& key, const std::vector<char>& value) {
  Reply r = request(kSet, 0, {key, std::string(value.begin(), value.end())});
  DS_CHECK(r.status == kOk, "rendezvous store set('", key, "') failed: ", r.fields.empty() ? "" : r.fields[0]);
}

std::vector<char> StoreClient::get(const std::string& key, std::chrono::milliseconds timeout) {
  Reply r = request(kGet, clamp_ms(timeout), {key});
  DS_CHECK(r.status != kTimeout, "rendezvous store: key '", key, "' did not appear within ", timeout.count(),
           " ms; a rank has not reached this point (see the other ranks' output)");
  DS_CHECK(r.status == kOk && r.fields.size() == 1, "rendezvous store get('", key, "') failed: ",
           r.fields.empty() ? "" : r.fields[0]);
  return std::vector<char>(r.fields[0].begin(), r.fields[0].end());
}

void StoreClient::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  Reply r = request(kWait, clamp_ms(timeout), keys);
  DS_CHECK(r.status != kTimeout, "rendezvous store: still missing after ", timeout.count(), " ms: ",
           join_keys(r.fields), "; those ranks have not reached this point (see their output)");
  DS_CHECK(r.status == kOk, "rendezvous store wait failed: ", r.fields.empty() ? "" : r.fields[0]);
}

}  // namespace ds::dist
