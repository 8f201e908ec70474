// Blocking client for the rendezvous store that src/dist/store.ts serves on
// the master (MASTER_ADDR:MASTER_PORT). Native code (Gloo's rendezvous) needs
// the store from a worker thread, so it speaks the wire protocol itself over
// its own socket instead of calling back into JavaScript.
//
// Wire protocol (all integers little-endian), one request then one reply per
// connection at a time:
//   frame   = u32 body_length, body
//   request = u8 op, u32 timeout_ms, u32 nfields, nfields x (u32 len, bytes)
//   reply   = u8 status (0 ok, 1 timeout, 2 error), u32 nfields, fields
// ops: 1 SET [key, value]; 2 GET [key] (waits for the key); 3 ADD [key, delta]
// (decimal text, returns the new value); 4 WAIT [keys...]; 5 CHECK [keys...]
// ("1"/"0"); 6 DELETE [key]; 7 HELLO [rank]; 8 DEAD [] (ranks whose HELLO
// connection closed). A timeout reply's fields are the keys still missing.
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace ds::dist {

class StoreClient {
 public:
  // Connects, retrying until connect_timeout (the master may still be starting).
  StoreClient(const std::string& host, int port, std::chrono::milliseconds connect_timeout);
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  void set(const std::string& key, const std::vector<char>& value);
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout);
  // Throws ds::Error naming the keys still missing after `timeout`.
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  const std::string& address() const { return address_; }

 private:
  struct Reply {
    uint8_t status = 0;
    std::vector<std::string> fields;
  };
  Reply request(uint8_t op, uint32_t timeout_ms, const std::vector<std::string>& fields);
  void send_all(const void* p, size_t n);
  void recv_all(void* p, size_t n);

  int fd_ = -1;
  std::string address_;
  std::mutex mu_;
};

}  // namespace ds::dist
