#ifndef VMCTL_STORE_SQLITE_SQLITE_STORE_H_
#define VMCTL_STORE_SQLITE_SQLITE_STORE_H_

#include <filesystem>
#include <memory>

#include "base/result.h"
#include "store/store.h"

namespace vmctl {

// Opens (creating if needed) the SQLite database at db_path and migrates it to the current
// schema. kFailedPrecondition if the database was written by a newer vmctl; kInternal on SQLite
// failures.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& db_path);

}  // namespace vmctl

#endif  // VMCTL_STORE_SQLITE_SQLITE_STORE_H_
