#include "daemon/schema.h"
typedef int schema_placeholder;
