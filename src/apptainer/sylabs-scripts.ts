/*
 * Static Singularity/Apptainer scripts that DUCC writes into every flat image, reproduced byte for byte
 * from DUCC (cvmfs/cvmfs `ducc/singularity/dotfiles.go` and `ducc/singularity/startup_files.go`), which
 * adapted them from Sylabs Singularity:
 *   https://github.com/sylabs/singularity/blob/c2f720a6fcecf24a1b4859418b1b7778dac92022/internal/pkg/build/sources/base_environment.go
 *   https://raw.githubusercontent.com/hpcng/singularity/0eca74e26dc6bc26e86ce203f704d46e22c68e55/internal/pkg/build/sources/conveyorPacker_oci.go
 * DUCC's copies differ from Sylabs' in one way: every empty line was removed from the scripts.
 *
 * Copyright (c) 2018-2019, Sylabs Inc. All rights reserved.
 * This software is licensed under a 3-clause BSD license.
 *
 * Original license:
 *
 * Copyright (c) 2015-2017, Gregory M. Kurtzer. All rights reserved.
 * Copyright (c) 2016-2017, The Regents of the University of California. All right reserved.
 * Copyright (c) 2017, SingularityWare, LLC. All rights reserved.
 * Copyright (c) 2018-2019, Sylabs, Inc. All rights reserved.
 *
 * Redistribution and use in source and binary forms, with or without
 * modification, are permitted provided that the following conditions are met:
 *
 * 1. Redistributions of source code must retain the above copyright notice,
 *    this list of conditions and the following disclaimer.
 *
 * 2. Redistributions in binary form must reproduce the above copyright notice,
 *    this list of conditions and the following disclaimer in the documentation
 *    and/or other materials provided with the distribution.
 *
 * 3. Neither the name of the copyright holder nor the names of its
 *    contributors may be used to endorse or promote products derived from this
 *    software without specific prior written permission.
 *
 * THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
 * AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
 * IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE
 * ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE
 * LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR
 * CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF
 * SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS
 * INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN
 * CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE)
 * ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE
 * POSSIBILITY OF SUCH DAMAGE.
 */

// The scripts are spelled line by line (joined with "\n", final "\n" included) so that trailing
// spaces ("# ") and tabs survive any editor; `\\` is one backslash, `\t` a tab, `\'` a quote.
function lines(...text: string[]): string {
  return `${text.join('\n')}\n`;
}

const SOURCE_ENV_SCRIPTS = ['for script in /.singularity.d/env/*.sh; do', '    if [ -f "$script" ]; then', '        . "$script"', '    fi', 'done'] as const;

/** `/.singularity.d/actions/exec` (Go `execFileContent`). */
export const EXEC_FILE_CONTENT = lines('#!/bin/sh', ...SOURCE_ENV_SCRIPTS, 'exec "$@"');

/** `/.singularity.d/actions/run` (Go `runFileContent`). */
export const RUN_FILE_CONTENT = lines(
  '#!/bin/sh',
  ...SOURCE_ENV_SCRIPTS,
  'if test -n "${SINGULARITY_APPNAME:-}"; then',
  '    if test -x "/scif/apps/${SINGULARITY_APPNAME:-}/scif/runscript"; then',
  '        exec "/scif/apps/${SINGULARITY_APPNAME:-}/scif/runscript" "$@"',
  '    else',
  '        echo "No Singularity runscript for contained app: ${SINGULARITY_APPNAME:-}"',
  '        exit 1',
  '    fi',
  'elif test -x "/.singularity.d/runscript"; then',
  '    exec "/.singularity.d/runscript" "$@"',
  'else',
  '    echo "No Singularity runscript found, executing /bin/sh"',
  '    exec /bin/sh "$@"',
  'fi',
);

/** `/.singularity.d/actions/shell` (Go `shellFileContent`). */
export const SHELL_FILE_CONTENT = lines(
  '#!/bin/sh',
  ...SOURCE_ENV_SCRIPTS,
  'if test -n "$SINGULARITY_SHELL" -a -x "$SINGULARITY_SHELL"; then',
  '    exec $SINGULARITY_SHELL "$@"',
  '    echo "ERROR: Failed running shell as defined by \'\\$SINGULARITY_SHELL\'" 1>&2',
  '    exit 1',
  'elif test -x /bin/bash; then',
  '    SHELL=/bin/bash',
  '    PS1="Singularity $SINGULARITY_NAME:\\\\w> "',
  '    export SHELL PS1',
  '    exec /bin/bash --norc "$@"',
  'elif test -x /bin/sh; then',
  '    SHELL=/bin/sh',
  '    export SHELL',
  '    exec /bin/sh "$@"',
  'else',
  '    echo "ERROR: /bin/sh does not exist in container" 1>&2',
  'fi',
  'exit 1',
);

/** `/.singularity.d/actions/start` (Go `startFileContent`). */
export const START_FILE_CONTENT = lines(
  '#!/bin/sh',
  '# if we are here start notify PID 1 to continue',
  "# DON'T REMOVE",
  'kill -CONT 1',
  ...SOURCE_ENV_SCRIPTS,
  'if test -x "/.singularity.d/startscript"; then',
  '    exec "/.singularity.d/startscript"',
  'fi',
);

/** `/.singularity.d/actions/test` (Go `testFileContent`). */
export const TEST_FILE_CONTENT = lines(
  '#!/bin/sh',
  ...SOURCE_ENV_SCRIPTS,
  'if test -n "${SINGULARITY_APPNAME:-}"; then',
  '    if test -x "/scif/apps/${SINGULARITY_APPNAME:-}/scif/test"; then',
  '        exec "/scif/apps/${SINGULARITY_APPNAME:-}/scif/test" "$@"',
  '    else',
  '        echo "No tests for contained app: ${SINGULARITY_APPNAME:-}"',
  '        exit 1',
  '    fi',
  'elif test -x "/.singularity.d/test"; then',
  '    exec "/.singularity.d/test" "$@"',
  'else',
  '    echo "No test found in container, executing /bin/sh -c true"',
  '    exec /bin/sh -c true',
  'fi',
);

/** The license header shared by `01-base.sh` and `99-base.sh` (note the trailing spaces in `# `). */
const BASE_SH_HEADER = [
  '#!/bin/sh',
  '# ',
  '# Copyright (c) 2017, SingularityWare, LLC. All rights reserved.',
  '# Copyright (c) 2015-2017, Gregory M. Kurtzer. All rights reserved.',
  '# ',
  '# Copyright (c) 2016-2017, The Regents of the University of California,',
  '# through Lawrence Berkeley National Laboratory (subject to receipt of any',
  '# required approvals from the U.S. Dept. of Energy).  All rights reserved.',
  '# ',
  '# This software is licensed under a customized 3-clause BSD license.  Please',
  '# consult LICENSE.md file distributed with the sources of this project regarding',
  '# your rights to use or distribute this software.',
  '# ',
  '# NOTICE.  This Software was developed under funding from the U.S. Department of',
  '# Energy and the U.S. Government consequently retains certain rights. As such,',
  '# the U.S. Government has been granted for itself and others acting on its',
  '# behalf a paid-up, nonexclusive, irrevocable, worldwide license in the Software',
  '# to reproduce, distribute copies to the public, prepare derivative works, and',
  '# perform publicly and display publicly, and to permit other to do so.',
  '# ',
  '# ',
] as const;

/** `/.singularity.d/env/01-base.sh` (Go `baseShFileContent`). */
export const BASE_SH_FILE_CONTENT = lines(...BASE_SH_HEADER);

/** `/.singularity.d/env/90-environment.sh` (Go `environmentShFileContent`). */
export const ENVIRONMENT_SH_FILE_CONTENT = lines('#!/bin/sh', '# Custom environment shell code should follow');

/** `/.singularity.d/env/95-apps.sh` (Go `appsShFileContent`). */
export const APPS_SH_FILE_CONTENT = lines(
  '#!/bin/sh',
  '#',
  '# Copyright (c) 2017, SingularityWare, LLC. All rights reserved.',
  '#',
  '# See the COPYRIGHT.md file at the top-level directory of this distribution and at',
  '# https://github.com/sylabs/singularity/blob/master/COPYRIGHT.md.',
  '#',
  '# This file is part of the Singularity Linux container project. It is subject to the license',
  '# terms in the LICENSE.md file found in the top-level directory of this distribution and',
  '# at https://github.com/sylabs/singularity/blob/master/LICENSE.md. No part',
  '# of Singularity, including this file, may be copied, modified, propagated, or distributed',
  '# except according to the terms contained in the LICENSE.md file.',
  'if test -n "${SINGULARITY_APPNAME:-}"; then',
  '    # The active app should be exported',
  '    export SINGULARITY_APPNAME',
  '    if test -d "/scif/apps/${SINGULARITY_APPNAME:-}/"; then',
  '        SCIF_APPS="/scif/apps"',
  '        SCIF_APPROOT="/scif/apps/${SINGULARITY_APPNAME:-}"',
  '        export SCIF_APPROOT SCIF_APPS',
  '        PATH="/scif/apps/${SINGULARITY_APPNAME:-}:$PATH"',
  '        # Automatically add application bin to path',
  '        if test -d "/scif/apps/${SINGULARITY_APPNAME:-}/bin"; then',
  '            PATH="/scif/apps/${SINGULARITY_APPNAME:-}/bin:$PATH"',
  '        fi',
  '        # Automatically add application lib to LD_LIBRARY_PATH',
  '        if test -d "/scif/apps/${SINGULARITY_APPNAME:-}/lib"; then',
  '            LD_LIBRARY_PATH="/scif/apps/${SINGULARITY_APPNAME:-}/lib:$LD_LIBRARY_PATH"',
  '            export LD_LIBRARY_PATH',
  '        fi',
  '        # Automatically source environment',
  '        if [ -f "/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/01-base.sh" ]; then',
  '            . "/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/01-base.sh"',
  '        fi',
  '        if [ -f "/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/90-environment.sh" ]; then',
  '            . "/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/90-environment.sh"',
  '        fi',
  '        export PATH',
  '    else',
  '        echo "Could not locate the container application: ${SINGULARITY_APPNAME}"',
  '        exit 1',
  '    fi',
  'fi',
);

/** `/.singularity.d/env/99-base.sh` (Go `base99ShFileContent`). */
export const BASE99_SH_FILE_CONTENT = lines(
  ...BASE_SH_HEADER,
  'if [ -z "$LD_LIBRARY_PATH" ]; then',
  '    LD_LIBRARY_PATH="/.singularity.d/libs"',
  'else',
  '    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"',
  'fi',
  'PS1="Singularity> "',
  'export LD_LIBRARY_PATH PS1',
);

/** `/.singularity.d/env/99-runtimevars.sh` (Go `base99runtimevarsShFileContent`; tab-indented). */
export const BASE99_RUNTIMEVARS_SH_FILE_CONTENT = lines(
  '#!/bin/sh',
  '# Copyright (c) 2017-2019, Sylabs, Inc. All rights reserved.',
  '#',
  '# This software is licensed under a customized 3-clause BSD license.  Please',
  '# consult LICENSE.md file distributed with the sources of this project regarding',
  '# your rights to use or distribute this software.',
  '#',
  '#',
  'if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then',
  '\tPATH="${SING_USER_DEFINED_PREPEND_PATH}:${PATH}"',
  'fi',
  'if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then',
  '\tPATH="${PATH}:${SING_USER_DEFINED_APPEND_PATH}"',
  'fi',
  'if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then',
  '\tPATH="${SING_USER_DEFINED_PATH}"',
  'fi',
  'unset SING_USER_DEFINED_PREPEND_PATH \\',
  '\t  SING_USER_DEFINED_APPEND_PATH \\',
  '\t  SING_USER_DEFINED_PATH',
  'export PATH',
);

/**
 * `/.singularity.d/runscript` as first written by `MakeBaseEnv` (Go `runscriptFileContent`). DUCC then
 * overwrites it with the generated runscript (`InsertRunScript`), so this text never survives.
 */
export const RUNSCRIPT_FILE_CONTENT = lines('#!/bin/sh', 'echo "There is no runscript defined for this container\\n";');

/** `/.singularity.d/startscript` (Go `startscriptFileContent`). */
export const STARTSCRIPT_FILE_CONTENT = lines('#!/bin/sh');

/**
 * The fixed part of the generated `/.singularity.d/runscript` that follows the `OCI_ENTRYPOINT=` and
 * `OCI_CMD=` lines (Go `InsertRunScript`).
 */
export const RUNSCRIPT_TAIL = lines(
  'CMDLINE_ARGS=""',
  '# prepare command line arguments for evaluation',
  'for arg in "$@"; do',
  '    CMDLINE_ARGS="${CMDLINE_ARGS} \\"$arg\\""',
  'done',
  '# ENTRYPOINT only - run entrypoint plus args',
  'if [ -z "$OCI_CMD" ] && [ -n "$OCI_ENTRYPOINT" ]; then',
  '    if [ $# -gt 0 ]; then',
  '        SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${CMDLINE_ARGS}"',
  '    else',
  '        SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT}"',
  '    fi',
  'fi',
  '# CMD only - run CMD or override with args',
  'if [ -n "$OCI_CMD" ] && [ -z "$OCI_ENTRYPOINT" ]; then',
  '    if [ $# -gt 0 ]; then',
  '        SINGULARITY_OCI_RUN="${CMDLINE_ARGS}"',
  '    else',
  '        SINGULARITY_OCI_RUN="${OCI_CMD}"',
  '    fi',
  'fi',
  '# ENTRYPOINT and CMD - run ENTRYPOINT with CMD as default args',
  '# override with user provided args',
  'if [ $# -gt 0 ]; then',
  '    SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${CMDLINE_ARGS}"',
  'else',
  '    SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${OCI_CMD}"',
  'fi',
  '# Evaluate shell expressions first and set arguments accordingly,',
  '# then execute final command as first container process',
  'eval "set ${SINGULARITY_OCI_RUN}"',
  'exec "$@"',
);
