#ifndef VMCTL_BASE_RESULT_H_
#define VMCTL_BASE_RESULT_H_

#include <cassert>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "base/error.h"

namespace vmctl {

// Result<T> holds a T or an Error. Errors are values: functions that can fail return a Result and
// callers propagate with VMCTL_TRY / VMCTL_ASSIGN_OR_RETURN. Accessing the wrong alternative is a
// programming error (asserted).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design
  template <typename U>
  requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
           !std::is_same_v<std::decay_t<U>, Error>) Result(U&& value)
      : v_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  // By value, so `for (auto& x : *F())` cannot bind to a destroyed temporary.
  T value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& error() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

  // The same result, its error (if any) prefixed with "context: ".
  Result WithContext(std::string_view context) && {
    if (ok()) return std::move(*this);
    return error().WithContext(context);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const& {
    assert(!ok());
    return *error_;
  }
  Error&& error() && {
    assert(!ok());
    return std::move(*error_);
  }

  Result WithContext(std::string_view context) && {
    if (ok()) return {};
    return error_->WithContext(context);
  }

 private:
  std::optional<Error> error_;
};

inline Result<void> Ok() { return {}; }

}  // namespace vmctl

#define VMCTL_CONCAT_INNER(a, b) a##b
#define VMCTL_CONCAT(a, b) VMCTL_CONCAT_INNER(a, b)

// Evaluates expr (a Result<...>); returns its error from the enclosing function if it failed.
#define VMCTL_TRY(expr)                           \
  do {                                            \
    auto vmctl_try_result = (expr);               \
    if (!vmctl_try_result.ok()) {                 \
      return std::move(vmctl_try_result).error(); \
    }                                             \
  } while (false)

// `VMCTL_ASSIGN_OR_RETURN(auto x, F());` declares x from F()'s value or returns F()'s error.
#define VMCTL_ASSIGN_OR_RETURN(lhs, expr) \
  VMCTL_ASSIGN_OR_RETURN_IMPL(VMCTL_CONCAT(vmctl_result_, __LINE__), lhs, expr)
#define VMCTL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).error();     \
  lhs = std::move(tmp).value()

#endif  // VMCTL_BASE_RESULT_H_
