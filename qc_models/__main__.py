from qc_models.cli import main
import sys
sys.exit(main())
