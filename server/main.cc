// kvserve command line. Subcommands are added as the engine grows.
#include <cstdio>

int main(int argc, char** argv) {
  std::fprintf(stderr, "usage: kvserve generate|serve ...\n");
  return 1;
}
