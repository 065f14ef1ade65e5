"""HTTP route modules (one APIRouter each); HTTP concerns live only here."""
