// The one translation unit that compiles Boost.Asio, Boost.Beast and Boost.JSON.
// Every other file includes their headers with *_SEPARATE_COMPILATION defined (see
// common/CMakeLists.txt), so the heavy template bodies are built once, not per file.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
#include <boost/json/src.hpp>
