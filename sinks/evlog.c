#include "sinks/evlog.h"
typedef int evlog_placeholder;
