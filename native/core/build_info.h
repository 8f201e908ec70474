// Facts about this build, reported by info() and `detseg3d info`.
#pragma once
#include <string>

namespace ds {

const char* version();
std::string build_flags();  // compiler, build type, CUDA on/off and architectures

}  // namespace ds
