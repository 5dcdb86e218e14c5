/* cmdclass_probe.c - test helper: prints "name class" for each command name
 * on stdin, by the built-in table. The integration tests compare it with a
 * real server's COMMAND flags. */
#include <stdio.h>
#include <string.h>

#include "cmdclass.h"

int main(void)
{
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (*line)
            printf("%s %s\n", line, cmdclass_str(cmdclass_builtin(line)));
    }
    return 0;
}
