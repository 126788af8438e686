#pragma once
/// Failures are exceptions; expected outcomes (not ready, end of stream) are values.
/// Every message names the stream, the peer and what to do.
#include <stdexcept>
#include <string>

namespace twinstream {

/// Base of every twinstream failure.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A wait ran past its timeout (Python: subclass of TimeoutError).
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// The peer is gone or unreachable (Python: subclass of ConnectionError).
class ConnectionError : public Error {
 public:
  using Error::Error;
};

/// The peer sent bytes that break the protocol (Python: subclass of ConnectionError).
class ProtocolError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

/// The caller passed something invalid (Python: subclass of ValueError).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// A feature or data plane is not available in this build or on this host.
class Unavailable : public Error {
 public:
  using Error::Error;
};

}  // namespace twinstream
