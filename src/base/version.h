/*
 * version.h - build identity. BCE_VERSION and BCE_REVISION come from the
 * Makefile (-D); the fallbacks keep other builds (fuzzers, IDEs) working.
 */
#ifndef BCE_VERSION_H
#define BCE_VERSION_H

#ifndef BCE_VERSION
#define BCE_VERSION "0.0.0-dev"
#endif
#ifndef BCE_REVISION
#define BCE_REVISION "unknown"
#endif

#endif
