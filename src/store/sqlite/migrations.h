#ifndef VMCTL_STORE_SQLITE_MIGRATIONS_H_
#define VMCTL_STORE_SQLITE_MIGRATIONS_H_

#include <span>
#include <string_view>

namespace vmctl::sqlite {

// Schema versions in order; migration i brings the schema from version i to i+1. Never edit a
// released step: add a new one.
std::span<const std::string_view> Migrations();

}  // namespace vmctl::sqlite

#endif  // VMCTL_STORE_SQLITE_MIGRATIONS_H_
