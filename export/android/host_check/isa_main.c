/* Loads libpkkd_adder.so built for a cross target (check_host_build.sh, stage cmake-cross, run
 * under qemu-user): prints the compute core's version and creates / destroys a delegate. */
#include <stdio.h>

struct TfLiteDelegate;
struct TfLiteDelegate* pkkd_adder_delegate_create(int num_threads);
void pkkd_adder_delegate_destroy(struct TfLiteDelegate* delegate);
const char* pkkd_adder_delegate_isa(void);

int main(void) {
  struct TfLiteDelegate* d = pkkd_adder_delegate_create(2);
  if (d == NULL) {
    fprintf(stderr, "pkkd_adder_delegate_create failed\n");
    return 1;
  }
  pkkd_adder_delegate_destroy(d);
  printf("%s\n", pkkd_adder_delegate_isa());
  return 0;
}
