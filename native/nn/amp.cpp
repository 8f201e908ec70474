#include "nn/amp.h"

namespace ds::nn {

std::vector<Tensor> trainable_grads(ParamStore& store) {
  std::vector<Tensor> g;
  for (ParamEntry& e : store.entries())
    if (!e.buffer && e.trainable) g.push_back(ParamStore::grad(e));
  return g;
}

AmpStepResult amp_optimizer_step(ParamStore& store, SGD& sgd, LossScaler* scaler) {
  AmpStepResult r;
  if (!scaler) {
    sgd.step();
    return r;
  }
  r.scale_used = scaler->scale();
  const bool found_inf = scaler->check(trainable_grads(store));
  if (!found_inf) sgd.step(1.0 / r.scale_used);
  r.applied = scaler->update(found_inf);
  return r;
}

}  // namespace ds::nn
