// Entry point of the Node addon: runs every registered binding's init.
#include "napi/common.h"

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  ds::napi::init_all(env, exports);
  return exports;
}

NODE_API_MODULE(detseg3d, InitAddon)
