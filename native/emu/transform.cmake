# CUDA emulator: turns a .cu file into C++ for the host compiler.
#   cmake -DIN=<file.cu> -DOUT=<file.cpp> -P transform.cmake
# - kernel<<<grid, block, smem, stream>>>(args) becomes
#   ::detseg3d_emu::Launch("kernel", grid, block, smem, stream).kernel(kernel)(args)
# - extern __shared__ __align__(n) T name[]; becomes a pointer to the emulator's
#   dynamic shared-memory arena.
# A #line directive keeps compiler messages pointing at the .cu file; the
# replacements never add or remove lines.
file(READ "${IN}" src)
string(REGEX REPLACE
  "extern[ \t]+__shared__[ \t]+(__align__\\([0-9]+\\)[ \t]+)?([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_])[ \t]+([A-Za-z_][A-Za-z0-9_]*)\\[\\]"
  "\\2* \\3 = reinterpret_cast<\\2*>(::detseg3d_emu::dynamic_shared())" src "${src}")
string(REGEX REPLACE
  "([A-Za-z_][A-Za-z0-9_:]*(<[^<>;(){}]*>)?)<<<([^;{}]*)>>>\\("
  "::detseg3d_emu::Launch(\"\\1\", \\3).kernel(\\1)(" src "${src}")
string(FIND "${src}" "<<<" left)
if(NOT left EQUAL -1)
  message(FATAL_ERROR "emulator transform: a kernel launch in ${IN} was not recognised")
endif()
file(WRITE "${OUT}" "#line 1 \"${IN}\"\n${src}")
