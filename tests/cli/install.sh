# `cmake --install` puts the binary in the prefix's bin/ (GNUInstallDirs), where it runs.
# Arguments: the build directory and the cmake program.
source "$(dirname "$0")/common.sh"
BUILD_DIR=$1 CMAKE=${2:-cmake}
"$CMAKE" --install "$BUILD_DIR" --prefix "$WORK/prefix" > install.log || { cat install.log; fail "cmake --install failed"; }
[ -x "$WORK/prefix/bin/fresco" ] || { cat install.log; fail "no bin/fresco in the install prefix"; }
"$WORK/prefix/bin/fresco" --version | grep -q "^fresco [0-9]" || fail "the installed fresco does not run"
echo "install: ok"
