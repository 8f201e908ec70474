// Where a tensor's memory lives. CUDA tensors arrive with the CUDA backend;
// until then every op checks for CPU and says so when it is not.
#pragma once
#include <string>

namespace ds {

struct Device {
  enum Kind : unsigned char { CPU = 0, CUDA = 1 };
  Kind kind = CPU;
  int index = 0;

  static Device cpu() { return Device{}; }
  static Device cuda(int i) { return Device{CUDA, i}; }
  bool is_cpu() const { return kind == CPU; }
  bool operator==(const Device& o) const { return kind == o.kind && (kind == CPU || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return kind == CPU ? std::string("cpu") : "cuda:" + std::to_string(index); }
};

}  // namespace ds
