// One error type for the whole native core. Every failure that a user can
// cause (bad shapes, wrong dtype, out of memory, ...) throws ds::Error with a
// message that says what was wrong and what to do; the N-API layer turns it
// into a JavaScript Error. Nothing in the core calls abort() on bad input.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace ds {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}
}  // namespace detail

}  // namespace ds

// DS_CHECK(cond, "message parts", value, ...): throws ds::Error when cond is false.
#define DS_CHECK(cond, ...)                                   \
  do {                                                        \
    if (!(cond)) throw ::ds::Error(::ds::detail::concat(__VA_ARGS__)); \
  } while (0)

#define DS_FAIL(...) throw ::ds::Error(::ds::detail::concat(__VA_ARGS__))
