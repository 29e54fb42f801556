import sys

from moe_tf.cli import main

sys.exit(main())
