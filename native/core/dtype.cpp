#include "core/dtype.h"

#include "core/error.h"

namespace ds {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
  }
  return "unknown";
}

DType dtype_from_name(const std::string& n) {
  if (n == "float32") return DType::Float32;
  if (n == "float64") return DType::Float64;
  if (n == "float16") return DType::Float16;
  if (n == "bfloat16") return DType::BFloat16;
  if (n == "int32") return DType::Int32;
  if (n == "int64") return DType::Int64;
  if (n == "uint8") return DType::UInt8;
  DS_FAIL("unknown dtype '", n, "': use one of float32, float64, float16, bfloat16, int32, int64, uint8");
}

}  // namespace ds
